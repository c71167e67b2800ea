"""Omnigrok's MNIST MLP on the mlp engine
======================================

Omnigrok's MNIST MLP, leading ``nn.Flatten`` and all, on the hand-batched mlp engine.

The model is Omnigrok's (Liu et al. 2022) MNIST network as its notebook builds it: ``nn.Sequential(nn.Flatten(),
nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))``, trained with MSE against
one-hot labels on 1000 training images. The ``nn.Flatten`` in front does not keep it off landscape's fastest
engine: the default engine (``auto``) runs it on ``mlp``, every member of a scan or a sweep in a few batched
matrix products.

Data, by default: MNIST-shaped images made from the 8x8 digits landscape bundles (``landscape.tasks.digits``),
upsampled to 28x28 with values in [0, 1] as torchvision's ``ToTensor`` gives them: 1000 for training, the other 797
for testing; nothing is downloaded. With ``--mnist DIR`` (``make(mnist=DIR)``): the real MNIST, read from its IDX
files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, gzipped or not, in ``DIR`` or torchvision's ``DIR/MNIST/raw``), the first ``n_train``
training and ``n_test`` test images; get them from https://yann.lecun.com/exdb/mnist/ or any mirror (torchvision
downloads the same files). This example never downloads them.

Run it (``python examples/mnist_mlp.py [FIGURE.png] [--mnist DIR]``, about 10 s on two CPU cores): the reduced
landscape over the weight norm and a short run from Omnigrok's large initialization (all weights times 8), with
the engine and the seconds per step printed. As a task for the command line::

    PYTHONPATH=examples landscape scan --task mnist_mlp:make --norms 0.25:4:8:log --steps 200
    PYTHONPATH=examples landscape train --task mnist_mlp:make --task-opt mnist=DIR --init-scale 8 --steps 5000
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.tasks import Task, TaskError, digits, mse, onehot_accuracy

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def omnigrok_mlp(width: int = 200, depth: int = 3) -> nn.Sequential:
    """Omnigrok's MNIST network: ``nn.Flatten``, then ``depth`` linear layers of ``width`` with ReLU between."""
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [784] + [width] * (depth - 1) + [10]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format: two zero bytes, type 0x08 for unsigned bytes, the number of dimensions, each
    dimension as a big-endian 32-bit integer, then the data), gzipped when its name ends in ``.gz``."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise TaskError(f"mnist_mlp: {path} is not an IDX file of unsigned bytes")
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(data) != header + int(np.prod(shape)):
        raise TaskError(f"mnist_mlp: {path} holds {len(data) - header} bytes of data where its header says "
                        f"{list(shape)}; the file is truncated or damaged")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find(root: Path, name: str) -> Path:
    for folder in (root, root / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise TaskError(f"mnist_mlp: no {name}[.gz] in {root} or {root / 'MNIST' / 'raw'}; get MNIST's four IDX "
                    "files (https://yann.lecun.com/exdb/mnist/ or a mirror) and pass their folder")


def load_mnist(root: str, n_train: int, n_test: int):
    """The first ``n_train`` training and ``n_test`` test images of MNIST's IDX files under ``root``: images
    ``[N, 1, 28, 28]`` in [0, 1] and one-hot labels ``[N, 10]``."""
    out = []
    for split, count in (("train", n_train), ("test", n_test)):
        images, labels = (read_idx(_find(Path(root), name)) for name in FILES[split])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(labels) != len(images):
            raise TaskError(f"mnist_mlp: {split} images {list(images.shape)} and labels {list(labels.shape)} are not "
                            "MNIST's [N, 28, 28] and [N]")
        if count > len(images):
            raise TaskError(f"mnist_mlp: the {split} files hold {len(images)} images, asked for {count}")
        x = torch.tensor(images[:count], dtype=torch.float32)[:, None] / 255.0
        out += [x, F.one_hot(torch.tensor(labels[:count], dtype=torch.long), 10).float()]
    return out


def make(n_train: int = 1000, n_test: int = 797, width: int = 200, depth: int = 3, seed: int = 0,
         mnist: str = "") -> Task:
    """Omnigrok's MNIST MLP and MSE on one-hot labels, on 28x28 images: upsampled bundled digits, or with
    ``mnist=DIR`` the real MNIST's IDX files."""
    if mnist:
        x_train, y_train, x_test, y_test = load_mnist(mnist, n_train, n_test)
    else:
        base = digits.make(n_train=n_train, seed=seed)
        if n_test > base.n_test:
            raise TaskError(f"mnist_mlp: the bundled digits leave {base.n_test} test images, asked for {n_test}")
        up = lambda x: F.interpolate(x.view(-1, 1, 8, 8), size=(28, 28), mode="bilinear")  # noqa: E731
        x_train, y_train, x_test, y_test = up(base.x_train), base.y_train, up(base.x_test[:n_test]), \
            base.y_test[:n_test]
    return Task("mnist-mlp", lambda: omnigrok_mlp(width, depth), x_train, y_train, x_test, y_test, loss=mse,
                accuracy=onehot_accuracy)


def main(figure: str, mnist: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import landscape as ls

    task = make(mnist=mnist)
    scan_steps, steps = 150, 200
    t0 = time.perf_counter()
    scan = ls.scan(task, norms="0.25:4:8:log", steps=scan_steps, lr=0.003, batch_size=200, quiet=True)
    scan_s = time.perf_counter() - t0
    print(f"scan engine {scan.attrs['engine']}: {scan.sizes['norm']} norms x {scan_steps} steps in {scan_s:.1f} s, "
          f"{scan_s / scan_steps:.4f} s per step for all norms")
    best = scan.min("restart")
    for norm, tr, te, acc in zip(best.norm.values, best.train_loss.values, best.test_loss.values,
                                 best.test_acc.values):
        print(f"norm {float(norm):7.2f}: train loss {float(tr):.4f}, test loss {float(te):.4f}, "
              f"test accuracy {float(acc):.3f}")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run = ls.train(task, out=Path(d) / "mnist.h5", steps=steps, lr=1e-3, weight_decay=0.01,
                       init_scale=[1.0, 8.0], batch_size=200, log_every=20, quiet=True)
        seconds = time.perf_counter() - t0
    members = run.sizes["trajectory"]
    print(f"train engine {run.attrs['engine']}: {members} trajectories x {steps} steps in {seconds:.1f} s, "
          f"{seconds / steps:.4f} s per step")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(best.norm, best.train_loss, "o-", label="train")
    ax[0].plot(best.norm, best.test_loss, "o-", label="test")
    ax[0].set(xscale="log", yscale="log", xlabel="weight norm $w$", ylabel="MSE", title="MNIST MLP, reduced landscape")
    ax[0].legend()
    for i in range(members):
        one = run.isel(trajectory=i)
        scale = float(one.init_scale)
        print(f"init scale {scale:g}: norm {float(one.norm[0]):.1f} -> {float(one.norm[-1]):.1f}, "
              f"train accuracy {float(one.train_acc[-1]):.3f}, test accuracy {float(one.test_acc[-1]):.3f}")
        ax[1].plot(one.step, one.train_acc, label=f"train, init x{scale:g}")
        ax[1].plot(one.step, one.test_acc, "--", label=f"test, init x{scale:g}")
    ax[1].set(xlabel="step", ylabel="accuracy", title="a short run (AdamW, wd 0.01)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Omnigrok's MNIST MLP on the mlp engine")
    ap.add_argument("figure", nargs="?", default="mnist_mlp.png")
    ap.add_argument("--mnist", default="", metavar="DIR", help="MNIST's four IDX files (never downloaded)")
    args = ap.parse_args()
    main(args.figure, args.mnist)

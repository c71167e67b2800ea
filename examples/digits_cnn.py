"""A CNN on the bundled digits, on the vmap engine
===============================================

A small CNN on the bundled 8x8 digits as your own Task: its reduced landscape and a short run, on the vmap engine.

The model is the usual first convolutional network (``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``Linear``) on scikit-learn's 8x8 handwritten digits, which landscape bundles as the ``digits`` task
(``landscape.tasks.digits``); the task's inputs are reshaped to images ``[N, 1, 8, 8]``, the loss is cross-entropy
on the integer labels. ``vmap`` batches convolutions, so the default engine (``auto``) runs every member of a scan or
a sweep as one batched computation.

Run it (``python examples/digits_cnn.py [FIGURE.png]``, under a minute on two CPU cores): a small scan over the
weight norm and a short training run through the Python API, with the engine and the seconds per step printed. As a
task for the command line::

    PYTHONPATH=examples landscape scan --task digits_cnn:make --norms 0.3:3:5:log --steps 100
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from landscape.tasks import Task, cross_entropy, digits, label_accuracy


class DigitsCNN(nn.Module):
    """Images ``[N, 1, 8, 8]`` -> logits ``[N, 10]``."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),              # [N, c, 4, 4]
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [N, 2c, 2, 2]
        )
        self.head = nn.Linear(8 * channels, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def make(n_train: int = 500, channels: int = 8, seed: int = 0) -> Task:
    """The bundled digits as images ``[N, 1, 8, 8]`` with integer labels, and a two-layer CNN."""
    base = digits.make(n_train=n_train, seed=seed)
    image = lambda x: x.view(-1, 1, 8, 8)  # noqa: E731
    return Task("digits-cnn", lambda: DigitsCNN(channels), image(base.x_train), base.y_train.argmax(1),
                image(base.x_test), base.y_test.argmax(1), loss=cross_entropy, accuracy=label_accuracy)


def main(figure: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import landscape as ls

    task = make()
    scan_steps, steps = 40, 60
    t0 = time.perf_counter()
    scan = ls.scan(task, norms="0.3:3:5:log", restarts=1, steps=scan_steps, lr=0.01, quiet=True)
    scan_s = time.perf_counter() - t0
    points = scan.sizes["norm"] * scan.sizes["restart"]
    print(f"scan engine {scan.attrs['engine']}: {points} points x {scan_steps} steps in {scan_s:.1f} s, "
          f"{scan_s / scan_steps:.4f} s per step")
    best = scan.min("restart")
    for norm, tr, te in zip(best.norm.values, best.train_loss.values, best.test_loss.values):
        print(f"norm {float(norm):7.3f}: train loss {float(tr):.3g}, test loss {float(te):.3g}")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run = ls.train(task, out=Path(d) / "cnn.h5", steps=steps, lr=3e-3, weight_decay=[0.0, 0.1],
                       batch_size=64, log_every=20, quiet=True)
        seconds = time.perf_counter() - t0
    members = run.sizes["trajectory"]
    print(f"train engine {run.attrs['engine']}: {members} trajectories x {steps} steps in {seconds:.1f} s, "
          f"{seconds / steps:.4f} s per step")
    end = run.isel(step=-1)
    print("test accuracy after training: " + ", ".join(f"wd {float(w):g}: {float(a):.3f}" for w, a in
                                                        zip(end.weight_decay.values, end.test_acc.values)))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(best.norm, best.train_loss, "o-", label="train")
    ax[0].plot(best.norm, best.test_loss, "o-", label="test")
    ax[0].set(xscale="log", yscale="log", xlabel="weight norm $w$", ylabel="loss", title="digits CNN, reduced landscape")
    ax[0].legend()
    for i in range(members):
        one = run.isel(trajectory=i)
        ax[1].plot(one.step, one.test_acc, label=f"test accuracy, wd {float(one.weight_decay):g}")
    ax[1].set(xlabel="step", ylabel="accuracy", title="short training run")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "digits_cnn.png")

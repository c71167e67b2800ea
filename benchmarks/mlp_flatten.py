"""Omnigrok's MNIST MLP, with its leading nn.Flatten, on the mlp engine against the loop and vmap engines (issue 29).

    python benchmarks/mlp_flatten.py [--members 8] [--n-train 1000] [--reps 20] [--threads N]

The model and data are ``examples/mnist_mlp.py``'s: ``nn.Sequential(nn.Flatten(), Linear(784, 200), ReLU,
Linear(200, 200), ReLU, Linear(200, 10))``, MSE on one-hot labels, on 28x28 images (the bundled digits upsampled),
as an ensemble of ``--members`` members at as many norms (0.5 to 50, log-spaced). For each engine the script times
one full-batch gradient, ``Ensemble.grad(theta, x, y)`` (with ``--batch-size B``, each member's own
minibatch of B), and prints the median seconds a step over ``--reps``
repetitions after warm-up, the speed-up of the mlp engine over the loop engine measured in the same run, and the
largest relative difference of each engine's gradient from the loop engine's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import mnist_mlp  # noqa: E402

from landscape.engine.ensemble import Ensemble  # noqa: E402
from landscape.engine.layout import layout_of
from landscape.engine.worker import init_params  # noqa: E402

ENGINES = ("mlp", "vmap", "loop")


def seconds_a_step(ens: Ensemble, theta, x, y, reps: int, warmup: int = 3) -> tuple[float, torch.Tensor]:
    per_member = x.dim() == 5  # [M, B, 1, 28, 28]: each member's own minibatch
    for _ in range(warmup):
        grad, _ = ens.grad(theta, x, y, per_member=per_member)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        grad, _ = ens.grad(theta, x, y, per_member=per_member)
        times.append(time.perf_counter() - start)
    return statistics.median(times), grad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=0, help="each member's own minibatch (default: full batch)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = mnist_mlp.make(n_train=args.n_train)
    module = task.model()
    layout = layout_of(module)
    norms = torch.logspace(torch.log10(torch.tensor(0.5)), torch.log10(torch.tensor(50.0)), args.members)
    theta = torch.stack([init_params(task, layout, s)[1] for s in range(args.members)])
    theta = theta * (norms / theta.norm(dim=1)).unsqueeze(1)
    x, y = task.x_train, task.y_train
    if args.batch_size:
        pick = torch.stack([torch.randperm(len(y), generator=torch.Generator().manual_seed(j))[:args.batch_size]
                            for j in range(args.members)])
        x, y = x[pick], y[pick]
    print(f"Flatten + MLP 784-200-200-10 (ReLU, MSE), {args.members} members at norms "
          f"{float(norms[0]):g}..{float(norms[-1]):g}; x {list(x.shape)} "
          f"({'per-member minibatches' if args.batch_size else 'full batch'}); "
          f"{torch.get_num_threads()} threads; median of {args.reps} gradient steps after warm-up")
    seconds, grads = {}, {}
    for engine in ENGINES:
        ens = Ensemble(task, module, layout, engine)
        assert ens.engine == engine, (engine, ens.engine)
        seconds[engine], grads[engine] = seconds_a_step(ens, theta, x, y, args.reps)
    assert Ensemble(task, module, layout).engine == "mlp", "auto should pick the mlp engine for this model"
    for engine in ENGINES:
        diff = float(((grads[engine] - grads["loop"]).norm(dim=1) / grads["loop"].norm(dim=1)).max())
        ratio = seconds["loop"] / seconds[engine]
        print(f"  {engine:<5} {seconds[engine]:.4f} s a step   loop / {engine} {ratio:5.2f}x"
              f"   largest gradient rel. diff. from loop {diff:.1e}")
    print(f"speed-up mlp over loop: {seconds['loop'] / seconds['mlp']:.2f}x "
          f"(mlp over vmap: {seconds['vmap'] / seconds['mlp']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

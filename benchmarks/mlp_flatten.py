"""Omnigrok's MNIST MLP, with its leading nn.Flatten, on the mlp engine against the loop and vmap engines (issue 29).

    python benchmarks/mlp_flatten.py [--members 8] [--n-train 1000] [--reps 20] [--threads N]

The model is ``nn.Sequential(nn.Flatten(), Linear(64, 200), ReLU, Linear(200, 200), ReLU, Linear(200, 10))`` on
the bundled 8x8 digits as images ``[N, 1, 8, 8]`` (``landscape.tasks.digits``'s rows reshaped; random images
when scikit-learn is missing), cross-entropy on integer labels, as an ensemble of ``--members`` members at as
many norms (0.5 to 50, log-spaced). For each engine the script times one full-batch gradient,
``Ensemble.grad(theta, x, y)``, and prints the median seconds a step over ``--reps`` repetitions after warm-up,
the speed-up of the mlp engine over the loop engine measured in the same run, and the largest relative
difference of each engine's gradient from the loop engine's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from landscape.ensemble import Ensemble, layout_of
from landscape.loop import init_params
from landscape.tasks import Task, TaskError, cross_entropy, get_task, label_accuracy

ENGINES = ("mlp", "vmap", "loop")


def model() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 200), torch.nn.ReLU(),
                               torch.nn.Linear(200, 200), torch.nn.ReLU(), torch.nn.Linear(200, 10))


def images(n_train: int) -> tuple[Task, str]:
    """The task on digits images ``[N, 1, 8, 8]`` with integer labels, and where the data came from."""
    try:
        digits = get_task("digits", {"n_train": n_train})
        x_train, x_test = digits.x_train.view(-1, 1, 8, 8), digits.x_test.view(-1, 1, 8, 8)
        y_train, y_test = digits.y_train.argmax(1), digits.y_test.argmax(1)
        source = "digits (sklearn 8x8)"
    except TaskError:
        g = torch.Generator().manual_seed(0)
        x_train, x_test = torch.rand(n_train, 1, 8, 8, generator=g), torch.rand(500, 1, 8, 8, generator=g)
        y_train, y_test = torch.randint(0, 10, (n_train,), generator=g), torch.randint(0, 10, (500,), generator=g)
        source = "random images (scikit-learn missing)"
    return Task("mnist-mlp", model, x_train, y_train, x_test, y_test, loss=cross_entropy,
                accuracy=label_accuracy), source


def seconds_a_step(ens: Ensemble, theta, x, y, reps: int, warmup: int = 3) -> tuple[float, torch.Tensor]:
    for _ in range(warmup):
        grad, _ = ens.grad(theta, x, y)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        grad, _ = ens.grad(theta, x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), grad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task, source = images(args.n_train)
    module = task.model()
    layout = layout_of(module)
    norms = torch.logspace(torch.log10(torch.tensor(0.5)), torch.log10(torch.tensor(50.0)), args.members)
    theta = torch.stack([init_params(task, layout, s)[1] for s in range(args.members)])
    theta = theta * (norms / theta.norm(dim=1)).unsqueeze(1)
    x, y = task.x_train, task.y_train
    print(f"Flatten + MLP 64-200-200-10 (ReLU, cross-entropy), {args.members} members at norms "
          f"{float(norms[0]):g}..{float(norms[-1]):g}; {source}, x {list(x.shape)}; "
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

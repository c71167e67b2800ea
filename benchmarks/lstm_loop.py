"""What the loop engine costs on an LSTM: landscape training examples/lstm_sentiment.py's model against a plain loop.

    python benchmarks/lstm_loop.py [--steps 1000] [--batch-size 64] [--members 2] [--threads 2] [--profile]

Both run in this process with the same thread count: ``ls.train(task, steps=S, batch_size=B, quiet=True)`` on
``--members`` trajectories (weight decays 0, 0.1, ...; the engine ``auto`` falls back to ``loop``), timed and
divided by S and by the members; then, per member, a plain PyTorch loop of the same model (``torch.optim.AdamW``,
the same lr, batch size and steps, random minibatches, BCE on the model's probabilities). Two pairs, each timed in
this one run: landscape with ``log_points=2`` (steps 0 and S) against the plain loop evaluating loss and accuracy
on the full training and test sets at steps 0 and S: what the engine costs per step; and landscape with its default
logging (a log-spaced grid of 100 points, every metric) against the plain loop evaluating at the same steps: what
recording a trajectory costs beyond the evaluations any loop that records one makes. Prints seconds per
member-step and the ratios (target: landscape within 10 % of plain). ``--profile`` runs cProfile over one landscape
run and prints the 25 functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import lstm_sentiment  # noqa: E402

import landscape as ls  # noqa: E402
from landscape.config.settings import TrainConfig  # noqa: E402
from landscape.experiments.train import log_steps  # noqa: E402


def landscape_run(task, steps: int, batch: int, members: int, lr: float, **extra) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ls.train(task, out=Path(d) / "b.h5", steps=steps, batch_size=batch, lr=lr,
                 weight_decay=[0.1 * i for i in range(members)], quiet=True, load=False, **extra)
        return time.perf_counter() - t0


def plain_run(task, steps: int, batch: int, members: int, lr: float, log_at=()) -> float:
    """A plain PyTorch loop per member; at each step in ``log_at``, the loss and accuracy on the full training and
    test sets, as a researcher's own loop recording a trajectory would."""
    x, y = task.x_train, task.y_train
    log_at = set(int(s) for s in log_at)
    t0 = time.perf_counter()
    for m in range(members):
        torch.manual_seed(m)
        model = task.model()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1 * m)
        g = torch.Generator().manual_seed(m)
        for step in range(steps + 1):
            if step in log_at:
                with torch.no_grad():
                    for xs, ys in ((x, y), (task.x_test, task.y_test)):
                        prob, _ = model(xs)
                        lstm_sentiment.bce(prob, ys).item(), lstm_sentiment.rounded_accuracy(prob, ys).item()
            if step == steps:
                break
            pick = torch.randint(0, len(y), (batch,), generator=g)
            prob, _ = model({k: v[pick] for k, v in x.items()})
            loss = lstm_sentiment.bce(prob, y[pick])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = lstm_sentiment.make()
    S, B, M = args.steps, args.batch_size, args.members
    grid = log_steps(TrainConfig(steps=S))
    plain_run(task, 5, B, 1, args.lr)  # warm-up
    plain = plain_run(task, S, B, M, args.lr, log_at=(0, S)) / (S * M)
    logged = plain_run(task, S, B, M, args.lr, log_at=grid) / (S * M)
    sparse = landscape_run(task, S, B, M, args.lr, threads=args.threads, log_points=2) / (S * M)
    default = landscape_run(task, S, B, M, args.lr, threads=args.threads) / (S * M)
    print(f"LSTM {task.n_train} reviews, batch {B}, {S} steps, {M} members, {torch.get_num_threads()} threads")
    print(f"plain PyTorch, evaluated at steps 0 and {S}:      {plain * 1e3:8.2f} ms per member-step")
    print(f"landscape, loop engine, 2 log points (0 and {S}): {sparse * 1e3:8.2f} ms per member-step, "
          f"ratio {sparse / plain:.3f}")
    print(f"plain PyTorch, evaluated at the {len(grid)} log steps:   {logged * 1e3:8.2f} ms per member-step")
    print(f"landscape, loop engine, default logs ({len(grid)} steps): {default * 1e3:8.2f} ms per member-step, "
          f"ratio {default / logged:.3f}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        landscape_run(task, S, B, M, args.lr, threads=args.threads)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue())
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the landscape's grokking prediction hold on every draw of the data, or only on the one it was tried on?

For each draw of the teacher-student data (``--task-opt seed=K``): scan the landscape (independent points and
the down branch) and train, into the same file, a free run per init scale and weight decay; then compare each
run's measured grokking step with the step ``landscape analyze`` predicts to each target norm (w_c, w*, the
Goldilocks zone's upper edge, the same on the down branch). Optionally (``--modular``) the same on the modular
MLP. Prints a table of measured / predicted per run and the worst |ratio - 1| per draw and target.

Every prediction is the landscape's alone (no parameter fitted to these runs): the scan, the run's own
memorization step and norm, its lr and weight decay. Uses the ``landscape`` command for the computation::

    python benchmarks/prediction_draws.py [--dir DIR] [--draws 0,1,2,3,4] [--init-scales 2,8]
        [--weight-decay 0.05,0.1,0.2] [--lr 3e-4] [--steps 60000,240000] [--modular] [--draws ""]

Files in ``--dir`` are kept and resumed: a second call only computes what is missing. About 10 minutes per
draw on a 2-core CPU with the defaults. Beside each run: its norm at memorization and at grokking, and the pace
its norm fell at between them as a fraction of pure weight decay's (1: decay alone moved it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from landscape import analysis, store

TARGETS = ("w_c", "w_star", "zone_high", "zone_high_down", "run_edge")
HEAD = {"w_c": "to w_c", "w_star": "to w*", "zone_high": "to zone edge", "zone_high_down": "to down edge",
        "run_edge": "to run's edge"}
TEACHER = ["--task", "teacher-student", "--task-opt", "n_train=100", "--task-opt", "n_test=100"]
MODULAR = ["--task", "modular", "--task-opt", "p=59", "--task-opt", "train_fraction=0.4"]
# The modular MLP groks at larger lr and weight decay than teacher-student (at lr 3e-4 and weight decay 0.05-0.2 its
# runs never grok within 60000 steps): the README's weight-decay sweep, at init scales 1 and 2.
MODULAR_RUNS = {"lr": "1e-3", "weight_decay": "2,3,5", "runs": [("1", 3000), ("2", 10000)]}


def landscape(cmd: list[str], threads: int) -> None:
    print("$ landscape " + " ".join(cmd) + " -q", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "landscape", *cmd, "-q"], check=True, env=env)


def run_draw(out: Path, task: list[str], runs: list[tuple[str, int]], args, lr: str, weight_decay: str) -> None:
    """Scan (independent and down branch) and train ``runs`` (init scale, steps) into ``out``; resumes."""
    done = out.exists() and store.read_scan(out) is not None
    if not done:
        landscape(["scan", *task, "--norms", args.norms, "--out", str(out)], args.threads)
    branches = store.read_branches(out) if out.exists() else {}
    if "down" not in branches:
        landscape(["scan", *task, "--norms", args.norms, "--branch", "down", "--out", str(out)], args.threads)
    for scale, steps in runs:
        landscape(["train", *task, "--init-scale", scale, "--weight-decay", weight_decay, "--lr", lr,
                   "--steps", str(steps), "--log-points", str(args.log_points), "--out", str(out)], args.threads)


def ratios(path: Path) -> list[dict]:
    """One row per trajectory of ``path``: its settings, measured step and each target's predicted step and ratio."""
    result = analysis.analyze(store.read_scan(path), store.read_trajectories(path),
                              branches=store.read_branches(path))
    rows = []
    for r in sorted(result.trajectories, key=lambda r: (r.init_scale, r.weight_decay)):
        row = {"init": r.init_scale, "wd": r.weight_decay, "measured": r.grokking.step.value,
               "w_mem": r.memorization.norm, "w_grok": r.grokking.norm,
               "pace": analysis.decay_pace(r.memorization, r.grokking, r.lr, r.weight_decay)}
        for p in r.predictions:
            row[p.target] = (p.step.value, p.ratio if p.ratio is not None else p.ratio_low, p.ratio is None)
        rows.append(row)
    return rows


def table(label: str, rows: list[dict]) -> dict[str, float | None]:
    """Print the rows of one draw; return the worst |ratio - 1| per target (None where a ratio is missing)."""
    print(f"\n{label}")
    print(f"{'init':>5} {'wd':>6} {'measured':>9} {'w_mem':>7} {'w_grok':>7} {'pace':>5} "
          + " ".join(f"{HEAD[t]:>18}" for t in TARGETS))
    worst: dict[str, float | None] = {t: 0.0 for t in TARGETS}
    for row in rows:
        cells = []
        for t in TARGETS:
            step, ratio, bound = row.get(t, (None, None, True))
            if step is None or ratio is None:
                cells.append(f"{'-':>18}")
                worst[t] = None
                continue
            cells.append(f"{step:>9.0f} ({'>' if bound else 'x'}{ratio:.2f})")
            if bound:
                worst[t] = None
            elif worst[t] is not None:
                worst[t] = max(worst[t], abs(ratio - 1))
        measured = "never" if row["measured"] is None else f"{row['measured']:.0f}"
        extra = " ".join("-".rjust(n) if row[k] is None else f"{row[k]:{n}.{d}f}"
                         for k, n, d in (("w_mem", 7, 2), ("w_grok", 7, 2), ("pace", 5, 2)))
        print(f"{row['init']:5g} {row['wd']:6g} {measured:>9} {extra} " + " ".join(cells))
    print("worst |ratio - 1|: " + ", ".join(f"{HEAD[t]} {_pct(w)}" for t, w in worst.items()))
    return worst


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", help="folder for the HDF5 files, kept and resumed (default: a temporary folder)")
    p.add_argument("--draws", default="0,1,2,3,4", help="teacher-student data seeds")
    p.add_argument("--init-scales", default="2,8")
    p.add_argument("--steps", default="60000,240000", help="training steps per init scale")
    p.add_argument("--weight-decay", default="0.05,0.1,0.2")
    p.add_argument("--lr", default="3e-4")
    p.add_argument("--log-points", type=int, default=400, help="log-spaced logging points (step resolution ~2%%)")
    p.add_argument("--norms", default="0.1:10:17:log")
    p.add_argument("--modular", action="store_true", help="also the modular MLP (p = 59, 40%% train; lr 1e-3, weight "
                   "decay 2, 3, 5, init scales 1 and 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    args = p.parse_args()
    scales, steps = args.init_scales.split(","), [int(s) for s in args.steps.split(",")]
    if len(steps) != len(scales):
        p.error("--steps needs one value per init scale")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        worst = {}
        for k in [int(s) for s in args.draws.split(",") if s]:
            out = folder / f"teacher-student-seed{k}.h5"
            run_draw(out, [*TEACHER, "--task-opt", f"seed={k}"], list(zip(scales, steps)), args, args.lr,
                     args.weight_decay)
            worst[f"draw {k}"] = table(f"teacher-student, draw {k} (--task-opt seed={k}), lr {args.lr}", ratios(out))
        if args.modular:
            out = folder / "modular.h5"
            run_draw(out, MODULAR, MODULAR_RUNS["runs"], args, MODULAR_RUNS["lr"], MODULAR_RUNS["weight_decay"])
            worst["modular"] = table(f"modular MLP (p = 59, 40% train), lr {MODULAR_RUNS['lr']}", ratios(out))
    print("\nworst |measured / predicted - 1| per draw")
    print(f"{'':>10} " + " ".join(f"{HEAD[t]:>13}" for t in TARGETS))
    for label, w in worst.items():
        print(f"{label:>10} " + " ".join(f"{_pct(w[t]):>13}" for t in TARGETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

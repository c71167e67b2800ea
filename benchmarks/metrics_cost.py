"""What logging the default metrics costs: a sweep with the task's default set against the always-logged core.

    python benchmarks/metrics_cost.py [--runs 3] [--only teacher]

For each sweep below, runs ``landscape train`` alternately with the default metrics and with ``--metrics norm``
(which logs only the always-logged core: losses, accuracies, norms), each in a fresh process and a fresh file,
on the default 100-point log grid, and prints the median wall times and their ratio (default / core).
Issue 13's target: under 1.10.
"""

from __future__ import annotations

import argparse
import sys

from paired import medians

SWEEPS = {
    "teacher-student, 12 members, 5000 steps (probe_r2, group_norm)": [
        "--task", "teacher-student", "--weight-decay", "0.03,0.1,0.3", "--seeds", "0,1,2,3", "--init-scale", "8",
        "--lr", "0.003", "--steps", "5000"],
    "modular MLP, 6 members, 2000 steps (probe_r2, group_norm, Fourier, RQI)": [
        "--task", "modular", "--weight-decay", "0.1,0.3,1", "--seeds", "0,1", "--init-scale", "2",
        "--steps", "2000"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="run only the sweeps whose name contains this")
    args = ap.parse_args()
    for name, argv in SWEEPS.items():
        if args.only not in name:
            continue
        f, c = medians("train", argv, [*argv, "--metrics", "norm"], args.runs)
        print(f"{name}: default metrics {f:.2f} s, core only {c:.2f} s (medians of {args.runs}); "
              f"ratio {f / c:.3f} (target < 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the landscape predict when a run groks? Omnigrok's LU mechanism, checked end to end.

In one run: scan the teacher-student landscape, train a weight-decay sweep
from a large initialization (8 x the default norm) into the same file, and
compare, per weight decay, the measured grokking step with the step predicted
by pure weight decay carrying the norm from memorization to w_c, to the
test-loss minimum w* and to the Goldilocks zone's upper edge. Then fit the
log-log slope of the measured grokking step against weight decay (the
mechanism predicts -1) and check it lies in [-1.4, -0.6].

Uses the ``landscape`` command (``python -m landscape``) for the computation
and ``landscape.analysis`` for the analysis. About 2 minutes on a 2-core CPU
with the defaults (one torch thread: the model is tiny, and a second thread
only spins when the other core is busy)::

    python benchmarks/lu_prediction.py [--out FILE.h5] [--steps 25000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from landscape import analysis, report, store

SLOPE_RANGE = (-1.4, -0.6)


def run(cmd: list[str], threads: int) -> float:
    """Run ``python -m landscape CMD`` with ``threads`` torch threads; return its wall time in seconds."""
    t0 = time.perf_counter()
    print(f"$ OMP_NUM_THREADS={threads} landscape " + " ".join(cmd) + " -q", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "landscape", *cmd, "-q"], check=True, env=env)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="HDF5 file for the scan and the trajectories (default: a temporary file)")
    p.add_argument("--weight-decay", default="0.03,0.1,0.3")
    p.add_argument("--init-scale", default="8")
    p.add_argument("--lr", default="0.003")
    p.add_argument("--steps", type=int, default=25000, help="training steps; wd 0.03 groks near 19000")
    p.add_argument("--log-points", type=int, default=300, help="log-spaced logging points (step resolution ~3%%)")
    p.add_argument("--norms", default="0.1:10:17:log")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "lu.h5"
        t_scan = run(["scan", "--task", "teacher-student", "--norms", args.norms, "--out", str(out)], args.threads)
        t_train = run(["train", "--task", "teacher-student", "--init-scale", args.init_scale,
                       "--weight-decay", args.weight_decay, "--lr", args.lr, "--steps", str(args.steps),
                       "--log-points", str(args.log_points), "--out", str(out)], args.threads)
        scan, trajs = store.read_scan(out), store.read_trajectories(out)
    print(f"scan {t_scan:.0f} s, training {t_train:.0f} s ({len(trajs)} trajectories x {args.steps} steps)\n")

    result = analysis.analyze(scan, trajs)
    print(report.analysis_report(result))

    print("\npredicted vs measured grokking step (prediction: memorization step + decay steps to the target)")
    print(f"{'wd':>6} {'measured':>9} {'to w_c':>16} {'to w*':>16} {'to zone edge':>16}")
    for r in sorted(result.trajectories, key=lambda r: r.weight_decay):
        cells = []
        for pred in r.predictions:
            if pred.step.value is None:
                cells.append(f"{'-':>16}")
            else:
                ratio = "" if pred.ratio is None else f" (x{pred.ratio:.2f})"
                cells.append(f"{pred.step.value:>8.0f}{ratio:>8}")
        measured = "never" if r.grokking.step.value is None else f"{r.grokking.step.value:.0f}"
        print(f"{r.weight_decay:6g} {measured:>9} " + " ".join(cells))
    print("(xR: measured / predicted)")

    fits = [f for f in result.sweeps if f.slope is not None]
    if not fits:
        print("\nno slope: " + "; ".join(f.reason or "" for f in result.sweeps))
        return 1
    f = fits[-1]
    err = "n/a" if f.stderr is None else f"{f.stderr:.3f}"
    ok = SLOPE_RANGE[0] <= f.slope <= SLOPE_RANGE[1]
    print(f"\nslope d log(grokking step) / d log(wd) = {f.slope:.3f} +- {err} (mechanism: -1; "
          f"predicted for these runs, to the zone edge: {_g(f.predicted_slopes.get('zone_high'))}, "
          f"to w*: {_g(f.predicted_slopes.get('w_star'))})")
    print(f"slope within {list(SLOPE_RANGE)}: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def _g(x) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())

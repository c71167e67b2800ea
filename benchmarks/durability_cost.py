"""What crash safety costs: the README's first command and a 12-member sweep, against a checkout before it.

    git worktree add /tmp/base bf810e0      # the last commit before atomic commits and locks
    python benchmarks/durability_cost.py --baseline /tmp/base [--runs 5]

Runs each command alternately with this checkout and with the baseline (``PYTHONPATH``), in fresh
output files, and prints the median wall time of each and their ratio (new / baseline) per command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
COMMANDS = {
    "README scan (teacher-student, 17 norms)": ["scan"],
    "12-member sweep (5000 steps, checkpoint every 1000)": [
        "train", "--weight-decay", "0.03,0.1,0.3", "--seeds", "0,1,2,3", "--init-scale", "8", "--lr", "0.003",
        "--steps", "5000", "--checkpoint-every", "1000"],
}


def _time(src: Path, argv: list[str]) -> float:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "PYTHONPATH": str(src)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "landscape", *argv, "--quiet", "--out", f"{d}/x.h5"], env=env,
                       check=True, cwd=d)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path, help="checkout of the commit to compare against")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for name, argv in COMMANDS.items():
        new, old = [], []
        for _ in range(args.runs):
            new.append(_time(HERE, argv))
            old.append(_time(args.baseline, argv))
        n, o = statistics.median(new), statistics.median(old)
        ratios = sorted(a / b for a, b in zip(new, old))
        print(f"{name}: new {n:.2f} s, baseline {o:.2f} s (medians of {args.runs}); new/baseline {n / o:.3f} "
              f"(pairwise {ratios[0]:.3f}..{ratios[-1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

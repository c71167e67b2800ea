"""Paired end-to-end timings for the benchmarks: two ``landscape`` command lines run alternately, each in a fresh
process writing a fresh file, and the median wall time of each (imported by the benchmark scripts)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall_time(command: str, argv: list[str]) -> float:
    """Seconds for ``python -m landscape COMMAND ARGV --quiet --out FRESH.h5``."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "landscape", command, *argv, "--quiet", "--out",
                        os.path.join(d, "out.h5")], check=True)
        return time.perf_counter() - t0


def medians(command: str, first: list[str], second: list[str], runs: int) -> tuple[float, float]:
    """Median wall times of ``first`` and ``second``, run alternately ``runs`` times each."""
    a, b = [], []
    for _ in range(runs):
        a.append(wall_time(command, first))
        b.append(wall_time(command, second))
    return statistics.median(a), statistics.median(b)

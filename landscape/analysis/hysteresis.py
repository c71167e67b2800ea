"""Hysteresis of the reduced landscape: where two scans of the same grid (the independent one and the
continuation branches) disagree (pure numpy).

Each scan is read at its best restart per norm (the lowest final train loss, as everywhere). For a pair of
scans, per norm, the gap is the ratio of their losses (first / second); the two scans *differ* at a norm when
the ratio of their test losses (or of their train losses) is beyond ``factor`` either way; the *area* is the
integral over log norm of |ln U_1 - ln U_2|, the test-loss branches' separation in log space (trapezoids
over the norms where both are finite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .landscape import best_restart

FACTOR = 2.0  # two scans differ at a norm where a loss ratio is beyond this factor either way


@dataclass
class Gap:
    """Two scans compared norm by norm: ``first`` / ``second`` (``"independent"``, ``"down"``, ``"up"``)."""

    first: str
    second: str
    factor: float
    norm: list[float] = field(default_factory=list)
    train_ratio: list[float | None] = field(default_factory=list)  # first / second, per norm
    test_ratio: list[float | None] = field(default_factory=list)
    test_range: tuple[float, float] | None = None  # smallest and largest norm where the test losses differ
    train_range: tuple[float, float] | None = None
    test_differ_at: int = 0  # how many norms
    area: float | None = None  # integral of |ln U_first - ln U_second| d ln w
    reason: str | None = None


def best(scan: dict, key: str) -> np.ndarray:
    """Per norm, ``key`` at the finished restart with the lowest train loss (NaN where none finished)."""
    k = best_restart(scan)
    out = np.asarray(scan[key], float)[np.arange(len(k)), np.maximum(k, 0)]
    return np.where(k >= 0, out, np.nan)


def _range(norm: np.ndarray, hit: np.ndarray) -> tuple[float, float] | None:
    return (float(norm[hit].min()), float(norm[hit].max())) if hit.any() else None


def compare(first: dict, second: dict, factor: float = FACTOR) -> Gap:
    """The gap between two scans (``store.read_scan`` dicts, with their ``branch``) on the same grid."""
    gap = Gap(first.get("branch", "independent"), second.get("branch", "independent"), factor)
    n1, n2 = np.asarray(first["norm"], float), np.asarray(second["norm"], float)
    if n1.shape != n2.shape or not np.allclose(n1, n2, rtol=1e-9):
        gap.reason = "the two scans have different norm grids"
        return gap
    ratio = {}
    for key in ("train_loss", "test_loss"):
        a, b = best(first, key), best(second, key)
        with np.errstate(all="ignore"):
            ratio[key] = np.where((a > 0) & (b > 0), a / b, np.nan)
    gap.norm = n1.tolist()
    gap.train_ratio = [None if not np.isfinite(r) else float(r) for r in ratio["train_loss"]]
    gap.test_ratio = [None if not np.isfinite(r) else float(r) for r in ratio["test_loss"]]
    ok = np.isfinite(ratio["test_loss"])
    if ok.sum() < 2:
        gap.reason = "fewer than two norms where both scans finished"
        return gap
    with np.errstate(all="ignore"):
        beyond = {k: np.isfinite(r) & (np.abs(np.log(r)) > np.log(factor)) for k, r in ratio.items()}
    gap.test_range, gap.train_range = _range(n1, beyond["test_loss"]), _range(n1, beyond["train_loss"])
    gap.test_differ_at = int(beyond["test_loss"].sum())
    x, y = np.log(n1[ok]), np.abs(np.log(ratio["test_loss"][ok]))
    gap.area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))) if len(x) > 1 else 0.0
    return gap


def compare_all(scans: dict[str, dict], factor: float = FACTOR) -> list[Gap]:
    """Every pair among the independent scan and the branches present: down against up first, then each branch
    against the independent scan."""
    pairs = [("down", "up"), ("down", "independent"), ("up", "independent")]
    return [compare(scans[a], scans[b], factor) for a, b in pairs if a in scans and b in scans]

"""The phase of a run (Liu et al. 2022): comprehension, grokking, memorization or confusion, from the two steps at
which it met its training and its test criterion. Pure functions, read by ``landscape.phase_diagram`` (building
diagrams from stored runs) and by the figures.

* comprehension: the test criterion is met no more than ``gap`` steps after the training one (or without it);
* grokking: both are met, the test one more than ``gap`` steps later;
* memorization: only the training criterion is met;
* confusion: neither is.

>>> classify(120, 300, gap=1000), classify(120, 4000, gap=1000), classify(120, None, gap=1000)
('comprehension', 'grokking', 'memorization')
>>> classify(None, None, gap=1000)
'confusion'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

PHASES = ("comprehension", "grokking", "memorization", "confusion")  # stored as codes 0..3, in this order


@dataclass(frozen=True)
class AxisKind:
    """A hyperparameter a phase diagram can vary: its training field, what it is, and the values it accepts."""

    field: str  # TrainConfig / Member field
    description: str
    zero: bool = False  # 0 is a valid value
    at_most_one: bool = False
    log: bool = True  # drawn on a log scale when every value is positive


AXES = {
    "lr": AxisKind("lr", "peak learning rate"),
    "weight-decay": AxisKind("weight_decay", "AdamW decoupled weight decay", zero=True),
    "init-scale": AxisKind("init_scale", "initialization scale (multiple of the default init)"),
    "train-frac": AxisKind("train_frac", "share of the training split trained on", at_most_one=True, log=False),
}


@dataclass(frozen=True)
class Axis:
    name: str  # as on the command line: lr, weight-decay, init-scale, train-frac
    values: tuple[float, ...]

    @property
    def kind(self) -> AxisKind:
        return AXES[self.name]

    @property
    def log(self) -> bool:
        """Drawn on a log scale: a positive axis spread over more than a factor 4."""
        return self.kind.log and min(self.values) > 0 and max(self.values) / min(self.values) > 4


@dataclass(frozen=True)
class PhaseRule:
    """The classification's thresholds (stored with the diagram)."""

    gap: int
    train_acc: float = 0.9
    test_acc: float = 0.9
    train_loss: float | None = None  # regression: absolute thresholds (else a scan in the file supplies them)
    test_loss: float | None = None


def default_gap(steps: int) -> int:
    """The comprehension/grokking gap when none is given: 10% of the budget, at most 1000 steps (Liu et al.'s
    1000 on their budget of 10^4, proportionally less on shorter runs).

    >>> default_gap(3000), default_gap(100000)
    (300, 1000)
    """
    return max(1, min(1000, steps // 10))


def classify(t_train: float | None, t_test: float | None, gap: float) -> str:
    """The phase of one run from its two times (None: never reached)."""
    if t_test is not None and (t_train is None or t_test - t_train <= gap):
        return "comprehension"
    if t_test is not None:
        return "grokking"
    return "memorization" if t_train is not None else "confusion"


def majority(phase: np.ndarray) -> np.ndarray:
    """``[Kx, Ky]``: each cell's most common code over the last axis (seeds); ties go to the lower code, and
    cells without a finished run (codes < 0) are -1."""
    out = np.full(phase.shape[:2], -1, dtype=np.int8)
    for i, j in np.ndindex(*out.shape):
        codes = [int(c) for c in phase[i, j] if c >= 0]
        if codes:
            counts = Counter(codes)
            out[i, j] = min(counts, key=lambda c: (-counts[c], c))
    return out


def seed_median(a: np.ndarray) -> np.ndarray:
    """``[Kx, Ky]``: the median over the last axis (seeds) of the finite values; NaN where there are none."""
    ok = np.isfinite(a).any(axis=2)
    out = np.full(a.shape[:2], np.nan)
    out[ok] = np.nanmedian(a[ok], axis=-1)
    return out

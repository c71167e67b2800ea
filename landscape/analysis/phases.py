"""Phase diagrams: every run of a two-hyperparameter grid classified as comprehension, grokking, memorization or
confusion (Liu et al. 2022, "Towards Understanding Grokking: An Effective Theory of Representation Learning").

Each run is classified (:func:`classify`) from its ``t_train`` and ``t_test``, the first logged steps at which its
training and its test accuracy reach their thresholds (0.9 each by default; for regression the loss criteria of
``landscape analyze``):

* comprehension: the test criterion is met no more than ``gap`` steps after the training one (or without it);
* grokking: both are met, the test one more than ``gap`` steps later;
* memorization: only the training criterion is met;
* confusion: neither is.

>>> classify(120, 300, gap=1000), classify(120, 4000, gap=1000), classify(120, None, gap=1000)
('comprehension', 'grokking', 'memorization')
>>> classify(None, None, gap=1000)
'confusion'

The grid's axes are any two of ``landscape.config.phases.AXES`` (a third through the seeds). Every cell is one trajectory of a single
training ensemble with per-member hyperparameters (``landscape.experiments.train``); this module builds from the stored
trajectories the diagram (:func:`diagram`), and says where the phases meet (:func:`summarize`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..config.phases import Axis, PhaseRule
from ..status import Status
from .landscape import Criteria, ScanAnalysis
from .trajectory import analyze_trajectory


PHASES = ("comprehension", "grokking", "memorization", "confusion")  # stored as codes 0..3, in this order


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


FINISHED = (Status.DONE.label, Status.DIVERGED.label)  # a trajectory's statuses that end its run


@dataclass
class Diagram:
    """A classified grid: arrays ``[Kx, Ky, S]`` over the x values, the y values and the seeds."""

    x: Axis
    y: Axis
    seeds: tuple[int, ...]
    rule: PhaseRule
    steps: int
    phase: np.ndarray  # int8 codes into PHASES; -1 where a cell has no finished trajectory
    t_train: np.ndarray  # float, NaN where not reached
    t_test: np.ndarray
    names: np.ndarray  # trajectory names (str)
    criteria: tuple[str, str] = ("", "")  # what t_train and t_test mean, in words
    lam: np.ndarray | None = None  # [Kx, Ky] the effective theory's lambda of each cell's training set (NaN: below
    # the critical fraction), where the runs store one (an addition task)

    phase_names = PHASES

    def majority(self) -> np.ndarray:
        """``[Kx, Ky]``: each cell's most common phase code over the seeds."""
        return majority(self.phase)


def criteria_of(rule: PhaseRule) -> Criteria:
    """``landscape analyze``'s criteria for the rule's thresholds."""
    return Criteria(train_acc=rule.train_acc, test_acc=rule.test_acc, train_loss=rule.train_loss,
                             test_loss=rule.test_loss)


def cell_of(member, x: Axis, y: Axis, seeds) -> tuple[int, int, int]:
    """The grid indices of a trajectory, from its own hyperparameters."""
    def index(values, v):
        return int(np.argmin(np.abs(np.asarray(values) - v)))
    return (index(x.values, float(getattr(member, x.kind.field))), index(y.values, float(getattr(member, y.kind.field))),
            list(seeds).index(int(member.seed)))


def diagram(x: Axis, y: Axis, seeds, members, trajectories: list[dict], rule: PhaseRule, steps: int,
            scan: ScanAnalysis | None = None) -> Diagram:
    """Classify each member's stored trajectory (``read_trajectories`` dicts; ``members`` the grid's
    ``config.Member`` entries) into its cell. ``scan`` supplies regression thresholds when the rule has none."""
    shape = (len(x.values), len(y.values), len(seeds))
    phase = np.full(shape, -1, dtype=np.int8)
    t_train, t_test = np.full(shape, np.nan), np.full(shape, np.nan)
    names = np.full(shape, "", dtype=object)
    by_name = {t["name"]: t for t in trajectories}
    criteria = ("", "")
    lam = np.full(shape[:2], np.nan) if any("effective_lambda" in t for t in trajectories) else None
    for m in members:
        i, j, s = cell_of(m, x, y, seeds)
        names[i, j, s] = m.name
        t = by_name.get(m.name)
        if lam is not None and t is not None and "effective_lambda" in t:
            lam[i, j] = t["effective_lambda"]
        if t is None or t.get("status") not in FINISHED:
            continue
        result = analyze_trajectory(t, scan, criteria_of(rule))
        a, b = result.memorization.step.value, result.grokking.step.value
        t_train[i, j, s] = np.nan if a is None else a
        t_test[i, j, s] = np.nan if b is None else b
        phase[i, j, s] = PHASES.index(classify(a, b, rule.gap))
        criteria = (result.memorization.criterion, result.grokking.criterion)
    return Diagram(x, y, tuple(seeds), rule, steps, phase, t_train, t_test, names, criteria, lam)


@dataclass
class Boundary:
    """Where grokking meets comprehension along one axis, at each value of the other."""

    along: str
    at: list[tuple[float, list[float]]] = field(default_factory=list)  # (other axis value, crossing values)


@dataclass
class FracFit:
    """``ln t_test = intercept + slope * train_frac`` over the cells that generalized, for each value of the other
    axis (None: fewer than two such cells)."""

    other: str
    fits: list[tuple[float, float | None, float | None, int]] = field(default_factory=list)  # (value, slope, r2, n)


@dataclass
class Summary:
    fractions: dict[str, float]
    cells: int
    unfinished: int
    boundaries: list[Boundary]
    frac_fit: FracFit | None


def _between(a: float, b: float, log: bool) -> float:
    return float(np.sqrt(a * b)) if log and a > 0 and b > 0 else (a + b) / 2


def _boundary(codes: np.ndarray, axis: Axis, other: Axis) -> Boundary:
    """Crossings grokking <-> comprehension along ``axis`` (the first index of ``codes``)."""
    g, c = PHASES.index("grokking"), PHASES.index("comprehension")
    out = Boundary(axis.name)
    for j, value in enumerate(other.values):
        row = codes[:, j]
        cross = [_between(axis.values[i], axis.values[i + 1], axis.log) for i in range(len(row) - 1)
                 if {int(row[i]), int(row[i + 1])} == {g, c}]
        if cross:
            out.at.append((value, cross))
    return out


def _frac_fit(d: Diagram) -> FracFit | None:
    if "train-frac" not in (d.x.name, d.y.name):
        return None
    t = seed_median(d.t_test)
    frac_axis, other = (d.x, d.y) if d.x.name == "train-frac" else (d.y, d.x)
    table = t if d.x.name == "train-frac" else t.T  # [frac, other]
    fit = FracFit(other.name)
    fracs = np.asarray(frac_axis.values)
    for j, value in enumerate(other.values):
        ok = np.isfinite(table[:, j]) & (table[:, j] > 0)
        if ok.sum() < 2:
            fit.fits.append((value, None, None, int(ok.sum())))
            continue
        yv = np.log(table[ok, j])
        slope, intercept = np.polyfit(fracs[ok], yv, 1)
        resid = yv - (intercept + slope * fracs[ok])
        ss = float(((yv - yv.mean()) ** 2).sum())
        fit.fits.append((value, float(slope), 1 - float((resid ** 2).sum()) / ss if ss > 0 else None, int(ok.sum())))
    return fit


def summarize(d: Diagram) -> Summary:
    """The share of each phase over the finished runs, the grokking/comprehension boundaries along each axis
    (on the seeds' majority phase), and, along a train-fraction axis, the fit of log t_test against it."""
    done = d.phase[d.phase >= 0]
    fractions = {p: float((done == k).mean()) if done.size else 0.0 for k, p in enumerate(PHASES)}
    codes = d.majority()
    boundaries = [_boundary(codes, d.x, d.y), _boundary(codes.T, d.y, d.x)]
    return Summary(fractions, int(d.phase.size), int((d.phase < 0).sum()), boundaries, _frac_fit(d))


def from_stored(s: dict) -> Diagram:
    """A :class:`Diagram` from ``store.read_phases``' values."""
    rule = PhaseRule(int(s["gap"]), float(s["train_acc"]), float(s["test_acc"]),
                     *(None if not np.isfinite(s[k]) else float(s[k]) for k in ("train_loss", "test_loss")))
    return Diagram(Axis(s["x_axis"], tuple(map(float, s["x"]))), Axis(s["y_axis"], tuple(map(float, s["y"]))),
                   tuple(int(v) for v in s["seed"]), rule, int(s["steps"]), np.asarray(s["phase"]),
                   np.asarray(s["t_train"], float), np.asarray(s["t_test"], float), np.asarray(s["trajectory"]),
                   (str(s["t_train_criterion"]), str(s["t_test_criterion"])),
                   None if "effective_lambda" not in s else np.asarray(s["effective_lambda"], float))

"""Critical norm, Goldilocks zone and grokking time predicted from the reduced landscape.

Omnigrok's LU mechanism: a run started at a large norm memorizes at once (the L's train loss is low there), then the
only force left is AdamW's decoupled weight decay, which multiplies the norm by ``1 - lr * wd`` per step until the
norm reaches the U's bottom, where the test loss is low. Grokking time then scales as ``1 / wd``. This module reads
the plain dicts of ``landscape.store.read_scan`` and ``read_trajectories`` and computes:

* from a scan: the critical norm w_c (the knee of the L), the norm w* that minimizes the test loss, and the
  Goldilocks zone around it, each as an :class:`Estimate` with an interval from the grid spacing and the restarts'
  spread (:func:`analyze_scan`);
* from each trajectory: the memorization and grokking steps, the constrained norm at both and the delay, and the
  grokking step predicted by pure weight decay from the norm at memorization to w_c, to w* and to the zone's upper
  edge (:func:`analyze_trajectory`);
* for weight-decay sweeps: the log-log slope of the measured grokking step against weight decay, with its standard
  error (:func:`weight_decay_sweeps`).

:func:`analyze` does all of it, :func:`to_dict` turns the result into strict JSON (``None`` for missing numbers,
never NaN); ``landscape.report`` prints it. Every function is pure (numpy and scipy only; no files, no printing).
Where the data cannot support an answer the value is ``None`` and ``reason`` says which criterion failed and why.

Conventions (all defaults live in :class:`Criteria`):

* Norms are absolute L2 norms of the constrained parameters (the scan's ``norm`` axis and the trajectories'
  ``constrained_norm``), never alpha.
* Per norm, the scan's *best restart* is the finished (status done) restart with the lowest train loss; its train
  and test values form the curves. Diverged and pending points are ignored.
* Between grid points, losses are interpolated linearly in log-loss against log-norm (always, for linear grids too:
  the L and the U are straight or parabolic on log-log axes); accuracies linearly against log-norm.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .plain import plain
from . import hysteresis, plane, transitions
from .status import Status


TARGETS = {
    "w_c": "critical norm (knee of the L)",
    "w_star": "test-loss minimum (bottom of the U)",
    "zone_high": "upper edge of the Goldilocks zone",
    "zone_high_down": "upper edge of the Goldilocks zone on the down branch (landscape scan --branch down)",
    "run_edge": "norm where the landscape's test loss, scaled to the run's own at memorization, meets the grokking "
                "criterion",
}


@dataclass(frozen=True)
class Criteria:
    """Thresholds of every criterion; the defaults below are what ``landscape analyze`` uses.

    ``train_loss``: absolute train-loss threshold for the knee and for memorization on regression tasks. When None
    (default) it is ``train_loss_rel`` (1e-2) times the best train loss at the smallest scanned norm: the knee is
    where the L has fallen two decades below its small-norm plateau (for MSE that plateau is about the label
    variance, the loss of predicting ~0), which makes the default independent of the task's loss scale. Trajectories
    use the same threshold, so "memorized" means "as low as the landscape is at w_c". A regression trajectory
    without a scan needs an explicit ``train_loss``.

    ``accuracy``: use accuracies for classification tasks (None = whenever the scan or trajectory says
    ``classification``): the knee is the smallest norm whose train accuracy reaches ``train_acc`` (0.99),
    memorization is train accuracy >= ``train_acc`` and grokking is test accuracy >= ``test_acc`` (0.9). False
    forces the loss criteria everywhere.

    ``goldilocks``: the zone is the norms whose test loss is at most this factor (10, one decade) times the scan's
    minimum test loss; for regression tasks grokking is the trajectory's test loss entering that band (or falling
    below ``test_loss`` when given, which needs no scan). On classification tasks (with ``accuracy``) the zone is
    instead the norms whose test accuracy reaches ``test_acc``, the grokking criterion itself: cross-entropy has no
    loss scale that a factor could be relative to (its minimum may sit at chance, ln C, and ten times chance is
    worse than guessing).
    """

    train_loss: float | None = None
    train_loss_rel: float = 1e-2
    train_acc: float = 0.99
    test_acc: float = 0.9
    goldilocks: float = 10.0
    test_loss: float | None = None
    accuracy: bool | None = None


@dataclass
class Estimate:
    """A value with an interval ``[low, high]``; ``value`` is None with a ``reason`` when there is no answer.

    ``low`` or ``high`` None means the interval is open on that side (for example a minimum at the grid's edge).
    ``note`` carries caveats about an answer that exists.
    """

    value: float | None = None
    low: float | None = None
    high: float | None = None
    reason: str | None = None
    note: str | None = None


@dataclass
class Zone:
    """The Goldilocks zone: norms whose test loss is at most ``factor`` times the minimum ``test_loss_min`` (whose
    test accuracy meets ``criterion`` on classification tasks; ``threshold`` None); ``reason`` where there is none."""

    low: Estimate
    high: Estimate
    factor: float
    test_loss_min: float | None
    threshold: float | None
    touches_low_edge: bool = False
    touches_high_edge: bool = False
    reason: str | None = None
    criterion: str = ""  # in words, e.g. "test loss <= 33.6 (10 x min 3.36)" or "test accuracy >= 0.9"


@dataclass
class ScanAnalysis:
    """What the landscape says: w_c, w* and the zone, with the thresholds that produced them."""

    task: str | None
    w0: float
    criterion: str  # how the knee was found, in words
    train_loss_threshold: float | None
    w_c: Estimate
    w_star: Estimate
    zone: Zone
    notes: list[str] = field(default_factory=list)
    u: dict[str, list[float]] = field(default_factory=dict)  # the test-loss curve the predictions read (see _u)


@dataclass
class Event:
    """A step in a trajectory: the first logged step meeting ``criterion``, and the norm there.

    The event happened after the previous logged step ``step.low`` and no later
    than ``step.high`` (= ``step.value``).
    """

    criterion: str
    step: Estimate
    norm: float | None = None


@dataclass
class Prediction:
    """Grokking step predicted by pure weight decay from the norm at memorization to a target norm.

    ``decay_steps = ln(w_mem / target) / -ln(1 - lr * wd)`` (0 when the norm is already at or below the target),
    ``step = memorization step + decay_steps`` and ``ratio = measured grokking step / predicted step``: 1 means
    exact, above 1 means the run grokked later than pure decay predicts. A run that never grokked has no ratio:
    ``ratio_reason`` says why, ``ratio_low`` = last logged step / predicted step is a bound it exceeds (>= 1: the
    run passed the predicted step without grokking; < 1: the prediction lies beyond the run, untested).
    """

    target: str
    target_norm: float | None
    decay_steps: Estimate
    step: Estimate
    ratio: float | None = None
    reason: str | None = None
    ratio_low: float | None = None
    ratio_reason: str | None = None
    premise: str | None = None  # where the run's logged norm shows that pure decay did not carry it to the target


@dataclass
class TrajectoryAnalysis:
    """Measured events of one trajectory and the predictions of the LU mechanism."""

    name: str
    weight_decay: float
    init_scale: float | None
    seed: int | None
    lr: float
    batch_size: int | None
    last_step: int | None
    status: str | None
    memorization: Event
    grokking: Event
    delay: Estimate
    predictions: list[Prediction]
    notes: list[str] = field(default_factory=list)
    fix_norm: bool = False  # trained with its norm held fixed: no decay to predict
    transitions: list = field(default_factory=list)  # landscape.transitions.Transition of each order parameter


@dataclass
class SweepFit:
    """log(measured grokking step) = slope * log(weight decay) + intercept, least squares.

    ``group`` holds the settings shared by the fitted trajectories, or ``{"pooled": n_groups}`` for the fit with a
    common slope and one intercept per group. ``predicted_slopes`` are the same fit on each target's predicted
    steps: the slope the mechanism expects for these very runs, including their memorization steps (close to, not
    exactly, -1).
    """

    group: dict[str, Any]
    names: list[str]
    weight_decays: list[float]
    grok_steps: list[float]
    slope: float | None = None
    stderr: float | None = None
    intercept: float | None = None
    deviation_sigma: float | None = None  # (slope + 1) / stderr
    predicted_slopes: dict[str, float | None] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class Analysis:
    """Everything :func:`analyze` computes, plus file-level messages."""

    criteria: Criteria
    scan: ScanAnalysis | None
    trajectories: list[TrajectoryAnalysis]
    sweeps: list[SweepFit]
    messages: list[str] = field(default_factory=list)
    down: ScanAnalysis | None = None  # the down branch's landscape, when the file has one
    hysteresis: list = field(default_factory=list)  # landscape.hysteresis.Gap of each pair of scans
    plane: Any = None  # landscape.plane.PlaneAnalysis of a two-norm scan


# ---------------------------------------------------------------- scan: curves and crossings

@dataclass
class _Curves:
    """Per-norm values over the finished restarts: the best restart's, and the min and max."""

    norm: np.ndarray
    logw: np.ndarray
    train: np.ndarray  # best restart (lowest train loss)
    test: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    train_min: np.ndarray
    train_max: np.ndarray
    test_min: np.ndarray
    test_max: np.ndarray
    acc_min: np.ndarray
    acc_max: np.ndarray
    test_acc_min: np.ndarray
    test_acc_max: np.ndarray
    test_per_restart: np.ndarray  # [K, R], NaN where not done
    dropped: int  # norms without any finished restart


def _curves(scan: dict) -> _Curves:
    ok = (np.asarray(scan["status"]) == Status.DONE) & np.isfinite(scan["train_loss"])
    keep = ok.any(axis=1)
    norm = np.asarray(scan["norm"], dtype=float)[keep]
    ok = ok[keep]

    def masked(name):
        return np.where(ok, np.asarray(scan[name], dtype=float)[keep], np.nan)

    train, test, acc, tacc = masked("train_loss"), masked("test_loss"), masked("train_acc"), masked("test_acc")
    best = np.argmin(np.where(ok, train, np.inf), axis=1)
    rows = np.arange(len(norm))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: accuracies of regression tasks
        return _Curves(norm=norm, logw=np.log(norm), train=train[rows, best], test=test[rows, best],
                       train_acc=acc[rows, best], test_acc=tacc[rows, best],
                       train_min=np.nanmin(train, 1), train_max=np.nanmax(train, 1),
                       test_min=np.nanmin(test, 1), test_max=np.nanmax(test, 1),
                       acc_min=np.nanmin(acc, 1), acc_max=np.nanmax(acc, 1),
                       test_acc_min=np.nanmin(tacc, 1), test_acc_max=np.nanmax(tacc, 1),
                       test_per_restart=test, dropped=int((~keep).sum()))


def _log(y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.maximum(np.asarray(y, dtype=float), 1e-300))


def _first_crossing(logw: np.ndarray, g: np.ndarray, g_thr: float) -> tuple[float | None, int]:
    """First index k with ``g[k] <= g_thr`` and the interpolated log-norm of the crossing.

    Returns ``(None, -1)`` if no point qualifies, ``(logw[0], 0)`` if the first
    one already does (no crossing inside the grid); NaN values never qualify.
    """
    hit = np.flatnonzero(np.nan_to_num(g, nan=np.inf) <= g_thr)
    if hit.size == 0:
        return None, -1
    k = int(hit[0])
    if k == 0:
        return float(logw[0]), 0
    return _interp(logw[k - 1], g[k - 1], logw[k], g[k], g_thr), k


def _interp(x0: float, g0: float, x1: float, g1: float, g_thr: float) -> float:
    """x where the straight line through (x0, g0) and (x1, g1) takes the value g_thr."""
    if not np.isfinite(g0) or g0 == g1:
        return float(x1)
    t = (g_thr - g0) / (g1 - g0)
    return float(x0 + min(max(t, 0.0), 1.0) * (x1 - x0))


def _half_step(logw: np.ndarray, k: int) -> tuple[float, float]:
    """Half the grid's log-spacing below and above index k (the neighbour's where k is an edge)."""
    d = np.diff(logw)
    if d.size == 0:
        return 0.0, 0.0
    left = d[k - 1] if k > 0 else d[0]
    right = d[k] if k < d.size else d[-1]
    return 0.5 * float(left), 0.5 * float(right)


def _span(value: float, *candidates: float | None) -> tuple[float, float]:
    vals = [value, *(c for c in candidates if c is not None)]
    return min(vals), max(vals)


# ---------------------------------------------------------------- scan: w_c, w*, zone

def _use_accuracy(classification: bool, criteria: Criteria) -> bool:
    return classification if criteria.accuracy is None else bool(criteria.accuracy and classification)


def train_loss_threshold(scan: dict, criteria: Criteria = Criteria()) -> tuple[float | None, str]:
    """The absolute train-loss threshold of the knee and of memorization, and how it was set.

    ``criteria.train_loss`` when given, else ``criteria.train_loss_rel`` times
    the best train loss at the smallest norm that has a finished point.
    """
    if criteria.train_loss is not None:
        return float(criteria.train_loss), f"train loss <= {criteria.train_loss:.3g}"
    c = _curves(scan)
    if c.norm.size == 0:
        return None, "no finished scan point"
    thr = criteria.train_loss_rel * float(c.train[0])
    return thr, (f"train loss <= {thr:.3g} ({criteria.train_loss_rel:g} x the train loss "
                 f"{c.train[0]:.3g} at the smallest norm {c.norm[0]:.4g})")


def critical_norm(scan: dict, criteria: Criteria = Criteria()) -> Estimate:
    """w_c, the knee of the L: the smallest norm where the best restart's train loss falls below the threshold.

    The threshold is :func:`train_loss_threshold`; on classification tasks (see ``Criteria.accuracy``) it is instead
    the smallest norm whose train accuracy reaches ``criteria.train_acc``. The crossing is interpolated between the
    two grid points around it (log-loss, or accuracy, against log-norm). The interval covers both half the local
    grid step around the value (on the log axis) and the crossings of the restarts' per-norm best and worst curves
    (the best curve crosses first, the worst last). If the curve dips below the threshold and rises again, the first
    crossing counts.
    """
    c = _curves(scan)
    if c.norm.size == 0:
        return Estimate(reason="no finished scan point (all pending or diverged)")
    if _use_accuracy(bool(scan.get("classification")), criteria):
        thr, what = criteria.train_acc, f"train accuracy >= {criteria.train_acc:g}"
        g, g_lo, g_hi, g_thr = -c.train_acc, -c.acc_max, -c.acc_min, -thr
        best_seen = f"the best train accuracy is {np.nanmax(c.train_acc):.4g}"
    else:
        thr, what = train_loss_threshold(scan, criteria)
        g, g_lo, g_hi, g_thr = _log(c.train), _log(c.train_min), _log(c.train_max), math.log(max(thr, 1e-300))
        j = int(np.nanargmin(c.train))
        best_seen = f"the lowest best-restart train loss is {c.train[j]:.3g}, at norm {c.norm[j]:.4g}"
    x, k = _first_crossing(c.logw, g, g_thr)
    if k < 0:
        return Estimate(reason=f"no point meets {what}: {best_seen}; scan larger norms or relax the threshold")
    if k == 0:
        return Estimate(high=float(c.norm[0]), reason=f"{what} already at the smallest scanned norm {c.norm[0]:.4g}: "
                        "the knee lies below the grid; scan smaller norms")
    half_lo, _ = _half_step(c.logw, k)  # the crossing lies in the interval (k-1, k)
    x_min, _ = _first_crossing(c.logw, g_lo, g_thr)
    x_max, k_max = _first_crossing(c.logw, g_hi, g_thr)
    lo, hi = _span(x, x - half_lo, x + half_lo, x_min, x_max)
    note = None
    if k_max < 0:
        hi = float(c.logw[-1])
        note = "some restart never meets the criterion: the upper bound is the largest scanned norm"
    return Estimate(value=math.exp(x), low=math.exp(lo), high=math.exp(hi), note=note)


def min_test_loss_norm(scan: dict) -> Estimate:
    """w*, the norm minimizing the best restart's test loss (the bottom of the U).

    Inside the grid, a parabola through the minimum and its two neighbours in log-loss against log-norm places the
    vertex between grid points (kept within the neighbours). The interval is half the grid step on each side of the
    grid minimum, widened to include the vertex and the minimum of every single restart's own test curve. A minimum
    at the grid's edge gives that edge, an interval open on that side, and a note.
    """
    c = _curves(scan)
    finite = np.isfinite(c.test)
    if not finite.any():
        return Estimate(reason="no finished scan point with a finite test loss")
    y = _log(np.where(finite, c.test, np.inf))
    k = int(np.argmin(y))
    x, value = float(c.logw[k]), float(c.norm[k])
    half_lo, half_hi = _half_step(c.logw, k)
    note = None
    if 0 < k < len(y) - 1 and np.isfinite(y[k - 1]) and np.isfinite(y[k + 1]):
        a, b, _ = np.polyfit(c.logw[k - 1:k + 2], y[k - 1:k + 2], 2)
        if a > 0:
            x = float(np.clip(-b / (2 * a), c.logw[k - 1], c.logw[k + 1]))
            value = math.exp(x)
    restart_argmins = [float(c.logw[int(np.nanargmin(col))]) for col in c.test_per_restart.T if np.isfinite(col).any()]
    lo, hi = _span(x, c.logw[k] - half_lo, c.logw[k] + half_hi, *restart_argmins)
    low, high = math.exp(lo), math.exp(hi)
    if len(y) == 1:
        note = "a single scanned norm: no minimum can be located"
        low = high = None
    elif k == 0:
        low, note = None, f"test loss lowest at the smallest scanned norm {c.norm[0]:.4g}: the minimum may lie below"
    elif k == len(y) - 1:
        high, note = None, f"test loss lowest at the largest scanned norm {c.norm[-1]:.4g}: the minimum may lie above"
    return Estimate(value=value, low=low, high=high, note=note)


def _zone_edges(logw, y, k, y_thr):
    """Log-norm edges of the run of points with ``y <= y_thr`` around index k, and whether they hit the grid ends."""
    if not y[k] <= y_thr:
        return None
    i = k
    while i > 0 and y[i - 1] <= y_thr:
        i -= 1
    j = k
    while j < len(y) - 1 and y[j + 1] <= y_thr:
        j += 1
    lo = float(logw[0]) if i == 0 else _interp(logw[i], y[i], logw[i - 1], y[i - 1], y_thr)
    hi = float(logw[-1]) if j == len(y) - 1 else _interp(logw[j], y[j], logw[j + 1], y[j + 1], y_thr)
    return lo, hi, i, j


def goldilocks_zone(scan: dict, factor: float = Criteria.goldilocks, test_acc: float | None = None) -> Zone:
    """Norms whose test loss (best restart) is at most ``factor`` times its minimum over the grid; with ``test_acc``
    (classification, see :class:`Criteria`), whose test accuracy reaches it.

    The zone is the contiguous run of grid points around the minimum (the most accurate point) meeting that
    criterion (a second, separate dip does not join it); each edge is interpolated between the last point inside
    and the first outside (log-log; accuracy linear against log-norm). Each edge's interval covers half the local
    grid step and the same edge on the restarts' per-norm best and worst test curves. An edge at one end of the
    grid is flagged (``touches_low_edge`` / ``touches_high_edge``): the true zone extends beyond it, so that side
    of the interval is open. A zone over the whole grid is no zone: no edges, and a ``reason`` (as for none).
    """
    c, acc = _curves(scan), test_acc is not None
    y = -c.test_acc if acc else _log(c.test)
    y = np.where(np.isfinite(y), y, np.inf)
    if not np.isfinite(y).any():
        nothing = Estimate(reason=f"no finished scan point with a finite test {'accuracy' if acc else 'loss'}")
        return Zone(nothing, nothing, factor, None, None, reason=nothing.reason)
    k, m = int(np.argmin(y)), float(np.nanmin(c.test)) if np.isfinite(c.test).any() else None
    if acc:
        thr, y_thr, curves = None, -test_acc, (-c.test_acc_max, -c.test_acc_min)
        criterion, stays = f"test accuracy >= {test_acc:g}", f">= {test_acc:g}"
    else:
        thr = factor * m
        y_thr, curves = math.log(max(thr, 1e-300)), (_log(c.test_min), _log(c.test_max))
        criterion = f"test loss <= {thr:.3g} ({factor:g} x min {m:.3g})"
        stays = f"within {factor:g} x its minimum {m:.3g}"
    found = _zone_edges(c.logw, y, k, y_thr)
    if found is None:  # accuracy only: the minimum always lies within a multiple of itself
        why = (f"no scanned norm reaches {criterion} (the best is {-y[k]:.3g}, at norm {c.norm[k]:.4g}); "
               "scan other norms, or train each point longer (--steps)")
        return Zone(Estimate(reason=why), Estimate(reason=why), factor, m, thr, reason=why, criterion=criterion)
    lo, hi, i, j = found
    touch_lo, touch_hi = i == 0, j == len(y) - 1
    if touch_lo and touch_hi:
        w0, a, b = float(scan.get("w0", math.nan)), c.norm[0], c.norm[-1]
        why = (f"test {'accuracy' if acc else 'loss'} stays {stays} over the whole scanned grid, norms {a:.4g} .. "
               f"{b:.4g}{f' ({a / w0:.3g} .. {b / w0:.3g} w0)' if w0 > 0 else ''}; scan a wider norm range")
        return Zone(Estimate(high=float(a), reason=why), Estimate(low=float(b), reason=why), factor, m, thr,
                    True, True, why, criterion)
    others = [o for o in (_zone_edges(c.logw, curve, k, y_thr) for curve in curves) if o is not None]

    def edge(x, idx, side, at_end):
        if at_end:
            where = "smallest" if side == 0 else "largest"
            bound = float(c.norm[0] if side == 0 else c.norm[-1])
            return Estimate(value=bound, low=None if side == 0 else bound, high=bound if side == 0 else None,
                            note=f"the zone reaches the {where} scanned norm: its edge lies beyond the grid")
        half = _half_step(c.logw, idx)[side]
        a, b = _span(x, x - half, x + half, *(o[side] for o in others))
        return Estimate(value=math.exp(x), low=math.exp(a), high=math.exp(b))

    return Zone(edge(lo, i, 0, touch_lo), edge(hi, j, 1, touch_hi), factor, m, thr, touch_lo, touch_hi,
                criterion=criterion)


def analyze_scan(scan: dict, criteria: Criteria = Criteria()) -> ScanAnalysis:
    """w_c, w* and the Goldilocks zone of a ``read_scan`` dict."""
    c = _curves(scan)
    notes = []
    if c.dropped:
        notes.append(f"{c.dropped} norm(s) without a finished restart (pending or diverged) ignored")
    thr, how = train_loss_threshold(scan, criteria) if c.norm.size else (None, "no finished scan point")
    acc = _use_accuracy(bool(scan.get("classification")), criteria)
    zone = goldilocks_zone(scan, criteria.goldilocks, criteria.test_acc if acc else None)
    return ScanAnalysis(task=scan.get("task"), w0=float(scan.get("w0", float("nan"))),
                        criterion=f"train accuracy >= {criteria.train_acc:g}" if acc else how, train_loss_threshold=thr,
                        w_c=critical_norm(scan, criteria), w_star=min_test_loss_norm(scan), zone=zone, notes=notes,
                        u=_u(c))


def _u(c: _Curves) -> dict[str, list[float]]:
    """The U as :func:`run_edge` reads it: per norm with a finite test loss, the best restart's test loss and the
    restarts' smallest and largest."""
    ok = np.isfinite(c.test) & (c.test > 0)
    return {"norm": c.norm[ok].tolist(), "test_loss": c.test[ok].tolist(),
            "test_loss_min": c.test_min[ok].tolist(), "test_loss_max": c.test_max[ok].tolist()}


# ---------------------------------------------------------------- trajectories

def incompatibility(scan: dict, trajectory: dict) -> str | None:
    """Why ``scan`` cannot serve as the landscape of ``trajectory`` (another task, data or norm), or None.

    Compares task, task options and the constrained parameter set (``--constrain``: otherwise ``constrained_norm``
    is not the scan's norm axis). Keys missing from either dict are not compared.
    """
    s_cfg, t_cfg = scan.get("config") or {}, trajectory.get("config") or {}
    s_task, t_task = scan.get("task", s_cfg.get("task")), t_cfg.get("task")
    if s_task is not None and t_task is not None and s_task != t_task:
        return f"the scan is of task {s_task}, trajectory {trajectory.get('name')} of task {t_task}"
    s_opt, t_opt = s_cfg.get("task_options"), t_cfg.get("task_options")
    if s_opt is not None and t_opt is not None and s_opt != t_opt:
        return f"the scan's task options {s_opt} differ from trajectory {trajectory.get('name')}'s {t_opt}"
    s_con, t_con = s_cfg.get("constrain"), t_cfg.get("constrain")
    if s_con is not None and t_con is not None and s_con != t_con:
        return (f"the scan constrains {s_con!r} but trajectory {trajectory.get('name')} logs the norm of {t_con!r}: "
                "its constrained_norm is not the scan's norm axis")
    return None


def first_step(trajectory: dict, series: str, threshold: float, above: bool, criterion: str) -> Event:
    """The first logged step where ``series`` is >= ``threshold`` (``above``) or <= it, with the norm there."""
    steps = np.asarray(trajectory["step"])
    values = np.asarray(trajectory[series], dtype=float)
    ok = np.nan_to_num(values, nan=-np.inf if above else np.inf)
    hit = np.flatnonzero(ok >= threshold if above else ok <= threshold)
    if hit.size == 0:
        if steps.size == 0:
            why = "nothing logged yet"
        elif not np.isfinite(values).any():
            why = f"{series} is never finite"
        else:
            j = int(np.nanargmax(values) if above else np.nanargmin(values))
            best = "highest" if above else "lowest"
            why = f"{best} {series.replace('_', ' ')} {values[j]:.4g} at step {int(steps[j])}"
            why += (f"; still running (last logged step {int(steps[-1])})"
                    if trajectory.get("status") == Status.RUNNING.label else f"; stopped at step {int(steps[-1])}")
        return Event(criterion, Estimate(reason=f"never reaches {criterion}: {why}"))
    k = int(hit[0])
    s = float(steps[k])
    norm = float(trajectory["constrained_norm"][k])
    return Event(criterion, Estimate(value=s, low=float(steps[k - 1]) if k else s, high=s), norm)


def decay_steps(w_from: float, w_to: float, lr: float, weight_decay: float) -> float:
    """Steps for AdamW's decoupled decay alone to shrink a norm from ``w_from`` to ``w_to``.

    Each step multiplies the parameters by ``1 - lr * wd``, so the answer is ``ln(w_from / w_to) / -ln(1 - lr * wd)``
    (0 if ``w_from <= w_to``). Raises ``ValueError`` unless ``0 < lr * wd < 1``.
    """
    q = lr * weight_decay
    if not 0 < q < 1:
        raise ValueError(f"lr * weight_decay must lie in (0, 1), got {q:g}")
    if w_from <= w_to:
        return 0.0
    return math.log(w_from / w_to) / -math.log1p(-q)


def scheduled_decay_steps(w_from: float, w_to: float, lrs: np.ndarray, weight_decay: float,
                          tail_lr: float) -> float | None:
    """:func:`decay_steps` under a learning-rate schedule: ``lrs`` the rates of the steps from the start on (to
    the run's end), ``tail_lr`` the rate after them (0: no more decay). Fractional within the step that reaches
    ``w_to``; None when it is never reached."""
    if w_from <= w_to:
        return 0.0
    need = math.log(w_from / w_to)
    done = np.cumsum(-np.log1p(-np.asarray(lrs, float) * weight_decay))
    k = int(np.searchsorted(done, need))
    if k < len(done):
        before = done[k - 1] if k else 0.0
        return k + (need - before) / (done[k] - before)
    if tail_lr <= 0:
        return None
    return len(done) + (need - (done[-1] if len(done) else 0.0)) / -math.log1p(-tail_lr * weight_decay)


def predict(memorization: Event, target: str, target_norm: Estimate, lr: float, weight_decay: float,
            measured: Event | None = None, schedule: tuple[np.ndarray, float] | None = None) -> Prediction:
    """The grokking step predicted by decay from the norm at memorization to ``target_norm``.

    The interval follows the target's: its upper end gives the fewest steps. ``schedule``: the learning rates from
    the memorization step to the run's end and the rate after it (:func:`scheduled_decay_steps`), for a warm-up or
    cosine schedule; None for the constant ``lr``.
    """
    none = Estimate()
    if memorization.step.value is None:
        return Prediction(target, target_norm.value, none, none, reason="no memorization step to start from")
    if target_norm.value is None:
        why = f"no {TARGETS.get(target, target)}: {target_norm.reason}"
        return Prediction(target, None, none, none, reason=why)
    if not 0 < lr * weight_decay < 1:
        why = ("weight decay 0: decay never shrinks the norm, the mechanism predicts no grokking"
               if weight_decay == 0 else f"lr * weight_decay = {lr * weight_decay:g} is outside (0, 1)")
        return Prediction(target, target_norm.value, none, none, reason=why)
    w_mem, t_mem = memorization.norm, memorization.step.value

    def steps(w):
        if w is None:
            return None
        if schedule is None:
            return decay_steps(w_mem, w, lr, weight_decay)
        return scheduled_decay_steps(w_mem, w, schedule[0], weight_decay, schedule[1])

    d = Estimate(steps(target_norm.value), steps(target_norm.high), steps(target_norm.low))
    if d.value is None:
        return Prediction(target, target_norm.value, none, none, reason="the learning-rate schedule's decay does "
                          f"not reach the target ({target_norm.value:.4g}) before it ends")
    if w_mem <= target_norm.value:
        d.note = f"the norm at memorization ({w_mem:.4g}) is already at or below the target ({target_norm.value:.4g})"
    p = Estimate(t_mem + d.value, None if d.low is None else t_mem + d.low, None if d.high is None else t_mem + d.high,
                 note=d.note)
    ratio = None
    if measured is not None and measured.step.value is not None and p.value > 0:
        ratio = measured.step.value / p.value
    return Prediction(target, target_norm.value, d, p, ratio)


def run_edge(land: ScanAnalysis, memorization: Event, test_loss: float | None) -> Estimate:
    """The norm at which the run should generalize: where the landscape's test loss, scaled by the run's own height
    above it at memorization, meets the grokking criterion.

    A run does not sit at the constrained minimizers: along its decay its test loss stays about a constant factor
    ``r`` above the scan's U at the same norm (1.2 to 1.9 on five draws of the teacher-student data), so it reaches
    the grokking threshold at a smaller norm than the U itself does (``zone_high``). ``r`` is read off the run at its
    memorization step (its test loss there over the U's at its norm, log-log interpolated); the target is the first
    norm below the norm at memorization where ``r`` times the U is at most the regression zone's threshold
    (``goldilocks`` x the U's minimum). Classification's criterion is test accuracy, which this height does not
    describe (a run's test loss at memorization can be hundreds of times the U's): no answer there.
    Nothing is fitted: the landscape gives the shape, the run's own memorization its height. The interval covers half
    the grid step at the crossing and the same crossing on the restarts' best and worst U.
    """
    zone, u = land.zone, land.u
    if memorization.step.value is None or memorization.norm is None:
        return Estimate(reason="no memorization step to read the run's height above the landscape at")
    if zone.reason or zone.high.value is None:
        return Estimate(reason=f"no Goldilocks zone: {zone.reason or zone.high.reason}")
    if zone.touches_high_edge:
        return Estimate(reason="the zone reaches the largest scanned norm: its upper edge is unknown")
    if len(u.get("norm", ())) < 2:
        return Estimate(reason="fewer than two scanned norms with a finite test loss")
    if test_loss is None or not math.isfinite(test_loss) or test_loss <= 0:
        return Estimate(reason=f"the run's test loss at memorization is {test_loss}: no height to read")
    logw = np.log(u["norm"])
    x0 = math.log(memorization.norm)
    if not logw[0] <= x0 <= logw[-1]:
        return Estimate(reason=f"the norm at memorization ({memorization.norm:.4g}) lies outside the scanned norms "
                        f"({u['norm'][0]:.4g} .. {u['norm'][-1]:.4g}): the landscape's test loss there is unknown")
    if zone.threshold is None:
        return Estimate(reason="the grokking criterion is test accuracy, and the run's height above the landscape is "
                        "read on the test loss: use the zone's own edge (zone_high)")
    thr, y_best = zone.threshold, _log(u["test_loss"])

    def crossing(y: np.ndarray) -> tuple[float | None, int]:
        below = logw < x0
        xs = np.concatenate([[x0], logw[below][::-1]])
        ys = np.concatenate([[np.interp(x0, logw, y)], y[below][::-1]])
        g = ys - ys[0] + math.log(test_loss)  # the U, shifted to pass through the run at memorization
        hit = np.flatnonzero(g <= math.log(thr))
        if hit.size == 0:
            return None, -1
        k = int(hit[0])
        return (x0 if k == 0 else _interp(xs[k - 1], g[k - 1], xs[k], g[k], math.log(thr))), k

    x, k = crossing(y_best)
    r = test_loss / math.exp(float(np.interp(x0, logw, y_best)))
    if x is None:
        return Estimate(reason=f"the landscape's test loss times {r:.3g} (the run's height above it at memorization) "
                        f"stays above the threshold {thr:.3g} at every scanned norm below {memorization.norm:.4g}")
    others = [crossing(_log(u[key]))[0] for key in ("test_loss_min", "test_loss_max")]
    j = int(np.searchsorted(logw, x))
    half = 0.5 * float(np.diff(logw)[min(max(j - 1, 0), len(logw) - 2)])
    lo, hi = _span(x, x - half if k else x, x + half if k else x, *others)
    return Estimate(value=math.exp(x), low=math.exp(lo), high=math.exp(min(hi, x0)),
                    note=f"the run's test loss at memorization is {r:.3g} x the landscape's at its norm")


def analyze_trajectory(trajectory: dict, scan: ScanAnalysis | None = None,
                       criteria: Criteria = Criteria(), down: ScanAnalysis | None = None,
                       no_scan: str = "no scan to take the target norm from") -> TrajectoryAnalysis:
    """Memorization, grokking, delay and predictions for one ``read_trajectories`` dict.

    ``scan`` is the :func:`analyze_scan` result of a compatible landscape (see :func:`incompatibility`; pass None
    otherwise). It supplies the regression thresholds (train loss at the knee, ``goldilocks`` x the test minimum)
    and the prediction targets; ``down`` (the down branch's, when there is one) the target ``zone_high_down``.
    Memorization and grokking are the first logged steps meeting their criterion; the delay is grokking minus
    memorization.
    """
    t = trajectory
    notes: list[str] = []
    lr, wd = float(t["lr"]), float(t["weight_decay"])
    acc = _use_accuracy(bool(t.get("classification")), criteria)
    if acc:
        mem = first_step(t, "train_acc", criteria.train_acc, True, f"train accuracy >= {criteria.train_acc:g}")
        grok = first_step(t, "test_acc", criteria.test_acc, True, f"test accuracy >= {criteria.test_acc:g}")
    else:
        thr = criteria.train_loss
        if thr is None and scan is not None:
            thr = scan.train_loss_threshold
        if thr is None:
            mem = Event("train loss below threshold", Estimate(
                reason="no train-loss threshold: give one (train_loss) or a compatible scan to take the knee's from"))
        else:
            mem = first_step(t, "train_loss", thr, False, f"train loss <= {thr:.3g}")
        if criteria.test_loss is not None:
            grok = first_step(t, "test_loss", criteria.test_loss, False, f"test loss <= {criteria.test_loss:.3g}")
        elif scan is not None and scan.zone.threshold is not None and not scan.zone.reason:
            z = scan.zone
            what = f"test loss <= {z.threshold:.3g} ({z.factor:g} x the scan's minimum {z.test_loss_min:.3g})"
            grok = first_step(t, "test_loss", z.threshold, False, what)
        else:  # a zone over the whole grid does not tell a generalizing run from one that memorizes
            grok = Event("test loss in the Goldilocks band", Estimate(reason="no test-loss threshold: give one "
                         "(test_loss) or " + (f"a scan with a Goldilocks zone ({scan.zone.reason})" if scan and
                                              scan.zone.reason else "a compatible scan for its test minimum")))
    delay = Estimate(reason="needs both a memorization and a grokking step")
    m, g = mem.step, grok.step
    if m.value is not None and g.value is not None:
        delay = Estimate(g.value - m.value, g.low - m.high, g.high - m.low)
        if g.value <= m.value:
            delay.note = "generalizes no later than it memorizes: no grokking delay"
    preds = []
    fix_norm = bool(t.get("fix_norm", False))
    if fix_norm:
        preds = [Prediction(k, None, Estimate(), Estimate(), reason="the norm was held fixed (--fix-norm): "
                            "weight decay does not move it, nothing to predict") for k in TARGETS]
    else:
        schedule = _schedule(t, mem)  # once per trajectory: a Python loop over the run's steps
        pace = _pace_words(t, mem, grok, lr, wd)
        for key, land in (("w_c", scan), ("w_star", scan), ("zone_high", scan), ("zone_high_down", down),
                          ("run_edge", scan)):
            if land is None:
                why = no_scan if key != "zone_high_down" else "no down branch (landscape scan --branch down)"
                preds.append(Prediction(key, None, Estimate(), Estimate(), reason=why))
                continue
            est = {"w_c": land.w_c, "w_star": land.w_star}.get(key, land.zone.high)
            if key.startswith("zone_high") and land.zone.touches_high_edge and not land.zone.reason:
                est = Estimate(reason="the zone reaches the largest scanned norm: its upper edge is unknown")
            if key == "run_edge":
                est = run_edge(land, mem, _at(t, "test_loss", mem))
            preds.append(predict(mem, key, est, lr, wd, grok, schedule))
            preds[-1].premise = _premise(t, grok, est, preds[-1], pace)
    steps = np.asarray(t["step"])
    last = int(steps[-1]) if steps.size else None
    for p in (p for p in preds if p.step.value is not None and g.value is None and last is not None):
        p.ratio_reason, p.ratio_low = _unconfirmed(p.step.value, grok, last, t.get("status") == Status.RUNNING.label)
    return TrajectoryAnalysis(
        name=str(t["name"]), weight_decay=wd, init_scale=_num(t.get("init_scale")), seed=_num(t.get("seed"), int),
        lr=lr, batch_size=_num(t.get("batch_size"), int), last_step=last,
        status=t.get("status"), memorization=mem, grokking=grok, delay=delay, predictions=preds, notes=notes,
        fix_norm=fix_norm, transitions=[transitions.find(k, t["step"], t[k]) for k in transitions.ORDER_PARAMETERS
                                        if k in t.get("series", ())])


def _unconfirmed(step: float, grok: Event, last: int, running: bool) -> tuple[str, float | None]:
    """Why a predicted ``step`` of a run without a grokking step has no ratio, and the bound the ratio exceeds."""
    if not (grok.step.reason or "").startswith("never reaches"):  # no criterion to measure with
        return "not measured: no grokking step to compare with", None
    head = f"not grokked yet at step {last} (still running)" if running else f"never grokked within {last} steps"
    return (f"{head}: the run passed the predicted step {step:.0f} without grokking" if step <= last else
            f"{head}: the predicted step {step:.0f} lies beyond it, untested"), (last / step if step > 0 else None)


def _schedule(t: dict, mem: Event) -> tuple[np.ndarray, float] | None:
    """The learning rates of trajectory ``t`` from its memorization step to the end of its run, and the rate after
    it (the peak for a constant schedule, 0 for cosine), or None where the constant ``lr`` holds throughout."""
    from .optim import scheduled_lr

    schedule, warmup, total = str(t.get("schedule", "constant")), int(t.get("warmup", 0)), int(t.get("steps", 0))
    start = mem.step.value
    if start is None or (schedule == "constant" and start >= warmup):
        return None
    lr = float(t["lr"])
    lrs = np.array([scheduled_lr(lr, s, total, warmup, schedule) for s in range(int(start), total)])
    return lrs, (lr if schedule == "constant" else 0.0)


def decay_pace(memorization: Event, end: Event, lr: float, weight_decay: float) -> float | None:
    """How fast the norm fell from ``memorization`` to ``end`` (grokking, say), as a fraction of the pace of AdamW's
    decay alone: ``ln(w_mem / w_end) / (-ln(1 - lr wd) * steps between)``; 1 is pure decay. None without both
    events, a later end, or ``0 < lr wd < 1``."""
    m, e, q = memorization, end, lr * weight_decay
    if m.step.value is None or e.step.value is None or not m.norm or not e.norm or e.step.value <= m.step.value \
            or not 0 < q < 1:
        return None
    return math.log(m.norm / e.norm) / (-math.log1p(-q) * (e.step.value - m.step.value))


def _pace_words(t: dict, mem: Event, grok: Event, lr: float, wd: float) -> str:
    """:func:`decay_pace` from memorization to grokking (or the last logged step), in words for :func:`_premise`."""
    steps, norms = np.asarray(t["step"], float), np.asarray(t["constrained_norm"], float)
    grokked = grok.step.value is not None
    end = grok if grokked or not steps.size else Event("", Estimate(value=float(steps[-1])), float(norms[-1]))
    fell = decay_pace(mem, end, lr, wd)
    return "" if fell is None else (f"; from memorization to {'grokking' if grokked else 'the last logged step'} "
                                    f"the norm fell at {fell:.2g} x the pace of pure decay")


def _premise(t: dict, grok: Event, target: Estimate, p: Prediction, pace: str) -> str | None:
    """Whether the run's own logged norm bears out the decay a prediction assumes, in words where it does not.

    A prediction assumes that AdamW's decay alone shrinks the norm from memorization on. Where the run's logged norm
    at the predicted step still lies above the target's interval, it did not: the gradient step held the norm up
    (Adam's normalized update keeps pushing a cross-entropy run outward). The words give the norm there and ``pace``
    (:func:`_pace_words`)."""
    steps, norms = np.asarray(t["step"], float), np.asarray(t["constrained_norm"], float)
    if p.step.value is None or target.value is None or not steps.size:
        return None
    if p.step.value > steps[-1] or not (np.isfinite(norms) & (norms > 0)).all():
        return None  # beyond the run: untested
    if grok.step.value is not None and p.step.value > grok.step.value:
        return None  # the run grokked first: the ratio says so, and after grokking the norm settles
    w = math.exp(float(np.interp(p.step.value, steps, np.log(norms))))
    if w <= (target.high if target.high is not None else target.value):
        return None
    return (f"the run's norm at the predicted step {p.step.value:.0f} is {w:.4g}, above the target {target.value:.4g}: "
            f"weight decay alone did not carry it there (the gradient step holds the norm up){pace}")


def _at(t: dict, series: str, event: Event) -> float | None:
    """``series`` of trajectory ``t`` at the logged step of ``event`` (None without one)."""
    if event.step.value is None or series not in t:
        return None
    k = np.flatnonzero(np.asarray(t["step"]) == event.step.value)
    return float(np.asarray(t[series], dtype=float)[k[0]]) if k.size else None


def _num(x, kind=float):
    return None if x is None else kind(x)


# ---------------------------------------------------------------- weight-decay sweeps

def fit_loglog(x, y, groups=None) -> tuple[float, float | None, float]:
    """Least-squares slope of log y on log x, its standard error and the intercept.

    With ``groups`` (one label per point), every group gets its own intercept and the slope is shared (the returned
    intercept is then the first group's). The standard error is None with no residual degrees of freedom.
    """
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if groups is None or len(set(groups)) == 1:
        if len(lx) > 2:
            r = stats.linregress(lx, ly)
            return float(r.slope), float(r.stderr), float(r.intercept)
        slope = float((ly[1] - ly[0]) / (lx[1] - lx[0]))
        return slope, None, float(ly[0] - slope * lx[0])
    labels = sorted(set(groups), key=list(groups).index)
    design = np.column_stack([lx] + [np.array([g == lab for g in groups], dtype=float) for lab in labels])
    coef, *_ = np.linalg.lstsq(design, ly, rcond=None)
    dof = len(ly) - design.shape[1]
    if dof <= 0:
        return float(coef[0]), None, float(coef[1])
    resid = ly - design @ coef
    cov = (resid @ resid / dof) * np.linalg.inv(design.T @ design)
    return float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0))), float(coef[1])


def _fit(group, members: list[TrajectoryAnalysis], excluded: dict[str, str], pooled_labels=None) -> SweepFit:
    wds = [m.weight_decay for m in members]
    grok = [m.grokking.step.value for m in members]
    fit = SweepFit(group=group, names=[m.name for m in members], weight_decays=wds, grok_steps=grok,
                   excluded=excluded)
    if len(set(wds)) < 2:
        fit.reason = (f"needs grokking steps at 2 or more weight decays; has {len(set(wds))}"
                      + (f" ({len(excluded)} trajectory(ies) excluded)" if excluded else ""))
        return fit
    if min(grok) <= 0:
        fit.reason = "a grokking step of 0 has no logarithm"
        return fit
    fit.slope, fit.stderr, fit.intercept = fit_loglog(wds, grok, pooled_labels)
    if fit.stderr:
        fit.deviation_sigma = (fit.slope + 1) / fit.stderr
    for key in TARGETS:
        pred = [next((p.step.value for p in m.predictions if p.target == key), None) for m in members]
        ok = all(v is not None and v > 0 for v in pred)
        fit.predicted_slopes[key] = fit_loglog(wds, pred, pooled_labels)[0] if ok else None
    return fit


def forecast_sweeps(results: list[TrajectoryAnalysis]) -> None:
    """Leave-one-out grokking forecasts from each order parameter's transition, within each sweep (in place).

    A sweep here is the trajectories that share lr, batch size and kind (free or norm-fixed).
    """
    groups: dict[tuple, list[TrajectoryAnalysis]] = {}
    for r in results:
        groups.setdefault((r.lr, r.batch_size, r.fix_norm), []).append(r)
    for members in groups.values():
        names = dict.fromkeys(tr.series for r in members for tr in r.transitions)
        for name in names:
            transitions.forecast([next((tr for tr in r.transitions if tr.series == name), None) for r in members],
                                 [r.grokking.step.value for r in members])


def weight_decay_sweeps(results: list[TrajectoryAnalysis]) -> list[SweepFit]:
    """Slope of log(measured grokking step) against log(weight decay), per sweep and pooled.

    A sweep is the trajectories that share ``(init_scale, seed, lr, batch_size)`` and differ in weight decay; each
    with two or more weight decays gets its own fit (scipy's ``linregress``; the error needs three). When several
    sweeps qualify, a pooled fit with one shared slope and one intercept per sweep follows (seeds and init scales
    shift the grokking time, the mechanism says they do not change the exponent). Trajectories that never grok or
    have no weight decay are excluded, with the reason. The mechanism predicts a slope of -1 (slightly shallower in
    practice, since the measured step includes the memorization step).
    """
    groups: dict[tuple, list[TrajectoryAnalysis]] = {}
    for r in results:
        if not r.fix_norm:  # a fixed norm is not shrunk by weight decay: no slope to fit
            groups.setdefault((r.init_scale, r.seed, r.lr, r.batch_size), []).append(r)
    fits, pooled, pooled_excluded, labels = [], [], {}, []
    for (init, seed, lr, bs), members in groups.items():
        if len({m.weight_decay for m in members}) < 2:
            continue  # not a sweep
        usable, excluded = [], {}
        for m in sorted(members, key=lambda m: m.weight_decay):
            if m.weight_decay <= 0:
                excluded[m.name] = "weight decay 0 has no logarithm"
            elif m.grokking.step.value is None:
                excluded[m.name] = m.grokking.step.reason or "no grokking step"
            else:
                usable.append(m)
        group = {"init_scale": init, "seed": seed, "lr": lr, "batch_size": bs}
        fit = _fit(group, usable, excluded)
        fits.append(fit)
        if fit.slope is not None:
            pooled += usable
            labels += [len(fits)] * len(usable)
            pooled_excluded.update(excluded)
    if len(set(labels)) > 1:
        fits.append(_fit({"pooled": len(set(labels))}, pooled, pooled_excluded, labels))
    return fits


# ---------------------------------------------------------------- everything, JSON, table

def analyze(scan: dict | None, trajectories: list[dict], criteria: Criteria = Criteria(),
            branches: dict[str, dict] | None = None) -> Analysis:
    """Analyze a file's scan, continuation branches and trajectories (``read_scan``, ``read_branches`` and
    ``read_trajectories`` output).

    Either may be missing (None, or an empty list); what can be computed still is, and ``messages`` says what could
    not and why. A trajectory whose task, data options or constrained set differ from the scan's is analyzed without
    the scan (see :func:`incompatibility`).
    """
    messages = []
    s = surface = None
    if scan is not None and "plane" in scan:
        surface = plane.analyze(scan, criteria.goldilocks)
        messages.append("the scan is a two-norm grid: w_c, w*, the Goldilocks zone along one norm and the "
                        "grokking predictions need a one-norm scan")
        scan = None
    elif scan is None:
        messages.append("no scan: w_c, w*, the Goldilocks zone and the predictions need one")
    elif not ((np.asarray(scan["status"]) == Status.DONE) & np.isfinite(scan["train_loss"])).any():
        messages.append("the scan has no finished point (all pending or diverged): nothing to read from it")
    else:
        s = analyze_scan(scan, criteria)
    if not trajectories:
        messages.append("no trajectories: nothing to compare the landscape's predictions with")
    branches = {b: d for b, d in (branches or {}).items()
                if ((np.asarray(d["status"]) == Status.DONE) & np.isfinite(d["train_loss"])).any()}
    down = analyze_scan(branches["down"], criteria) if "down" in branches else None
    gaps = hysteresis.compare_all({**({"independent": scan} if s is not None else {}), **branches})
    results = []
    for t in trajectories:
        why = incompatibility(scan, t) if s is not None else None
        why_down = incompatibility(branches["down"], t) if down is not None else None
        r = analyze_trajectory(t, None if why else s, criteria, None if why_down else down,
                               *(["the scan is a two-norm grid, not a norm axis"] if surface else []))
        for what, reason in (("scan", why), ("down branch", why_down)):
            if reason:
                r.notes.append(f"{what} not used: {reason}")
                messages.append(f"{t['name']}: {what} not used: {reason}")
        results.append(r)
    forecast_sweeps(results)
    sweeps = weight_decay_sweeps(results)
    if results and not sweeps:
        messages.append("no weight-decay sweep (trajectories sharing init scale, seed, lr and batch size "
                        "at two or more weight decays): no slope")
    return Analysis(criteria, s, results, sweeps, messages, down, gaps, surface)


def to_dict(analysis: Analysis) -> dict[str, Any]:
    """The analysis as plain JSON types: dataclasses become dicts, NaN and infinities None."""
    out = plain(analysis)
    out["targets"] = dict(TARGETS)
    return out

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

import numpy as np

from ..status import Status



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


# ---------------------------------------------------------------- weight-decay sweeps


# ---------------------------------------------------------------- everything, JSON, table


def best_restart(scan: dict) -> np.ndarray:
    """Per norm, the index of the finished restart with the lowest train loss (-1 if none)."""
    loss = np.where(scan["status"] == Status.DONE, scan["train_loss"], np.inf)
    best = np.argmin(loss, axis=1)
    best[~np.isfinite(loss.min(axis=1))] = -1
    return best

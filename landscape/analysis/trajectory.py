"""Along one trajectory: the memorization and grokking steps, the constrained norm at both and the delay, and the
grokking step predicted by pure weight decay from the norm at memorization to w_c, to w* and to the zone's upper
edge (:func:`analyze_trajectory`); ``reason`` says why where the data cannot support an answer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..status import Status
from . import transitions
from .landscape import Criteria, Estimate, ScanAnalysis, _interp, _log, _span, _use_accuracy


TARGETS = {
    "w_c": "critical norm (knee of the L)",
    "w_star": "test-loss minimum (bottom of the U)",
    "zone_high": "upper edge of the Goldilocks zone",
    "zone_high_down": "upper edge of the Goldilocks zone on the down branch (landscape scan --branch down)",
    "run_edge": "norm where the landscape's test loss, scaled to the run's own at memorization, meets the grokking "
                "criterion",
}


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
    transitions: list = field(default_factory=list)  # landscape.analysis.transitions.Transition of each order parameter
    group_lr: float | None = None  # the rates of the run's --group parameters, where it has them
    group_weight_decay: float | None = None


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
    glr, gwd = _num(t.get("group_lr")), _num(t.get("group_weight_decay"))
    if fix_norm:
        preds = [Prediction(k, None, Estimate(), Estimate(), reason="the norm was held fixed (--fix-norm): "
                            "weight decay does not move it, nothing to predict") for k in TARGETS]
    elif (glr is not None and glr != lr) or (gwd is not None and gwd != wd):
        preds = [Prediction(k, None, Estimate(), Estimate(), reason="the run's --group parameters decay at other "
                            "rates than the rest (per-group lr and weight decay): one decay law does not apply")
                 for k in TARGETS]
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
                                        if k in t.get("series", ())], group_lr=glr, group_weight_decay=gwd)


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
    from ..config.schedule import scheduled_lr

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

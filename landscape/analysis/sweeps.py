"""Weight-decay sweeps: the log-log slope of the measured grokking step against weight decay, with its standard
error (:func:`weight_decay_sweeps`), and each sweep's grokking forecasts from its order parameters' transitions
(:func:`forecast_sweeps`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from . import transitions
from .trajectory import TARGETS, TrajectoryAnalysis


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

    A sweep here is the trajectories that share lr (and ``--group`` rates), batch size and kind (free or norm-fixed).
    """
    groups: dict[tuple, list[TrajectoryAnalysis]] = {}
    for r in results:
        groups.setdefault((r.lr, r.group_lr, r.group_weight_decay, r.batch_size, r.fix_norm), []).append(r)
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
            groups.setdefault((r.init_scale, r.seed, r.lr, r.batch_size, r.group_lr), []).append(r)
    fits, pooled, pooled_excluded, labels = [], [], {}, []
    for (init, seed, lr, bs, _), members in groups.items():
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

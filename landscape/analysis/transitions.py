"""Transitions of order parameters along training, and grokking forecasts from them (pure numpy).

An order parameter (``ORDER_PARAMETERS``, logged by ``landscape.metrics``) moves from an early plateau to a
late one. :func:`find` locates the move on the log-step axis: the early and late plateaus are the medians of the
first and the last ``PLATEAU`` share of the logged points; the transition step is where the series first crosses
half-way between them, the start and end where it first crosses 10% and 90% of the way (each interpolated
linearly in log step between the logged points around the crossing). A change between the plateaus smaller than
``MIN_CHANGE`` of the series' largest magnitude is not a transition. Losses (``LOG_SCALE``) are read in log
space: their transition is where they first cross the geometric mean of their plateaus, and a change under
``MIN_CHANGE`` of the largest |log value| (or a factor 1.5, whichever is more) is none. The excluded loss falls with the training loss first (memorization)
and rises later (the circuit): its transition is read on the points from its minimum on (``AFTER_MINIMUM``). :func:`forecast` predicts a trajectory's
grokking step as its transition step plus the median lag of the other trajectories of its sweep (a
leave-one-out estimate), the lag measured in log step, ln(grokking step / transition step): across a sweep the
transition and grokking both scale with the run's time scale (1 / weight decay), so their ratio, not their
difference, is what the other runs share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORDER_PARAMETERS = ("fourier_concentration", "circularity", "gini_fourier", "rqi", "effective_rqi", "probe_r2",
                    "restricted_loss", "excluded_loss")
LOG_SCALE = ("restricted_loss", "excluded_loss")  # positive series whose transitions are read in log space
AFTER_MINIMUM = ("excluded_loss",)  # falls with the training loss (memorization) first: read from its minimum on
PLATEAU = 0.1  # share of the logged points (from each end) whose median is a plateau
MIN_CHANGE = 0.1  # |late - early| below this share of the largest |value| is no transition


@dataclass
class Transition:
    """Where ``series`` moved from ``early`` to ``late``: half-way at ``step``, 10% at ``start``, 90% at ``end``.

    ``lead`` is the grokking step minus ``step`` (positive: the order parameter moved first); ``forecast`` the
    leave-one-out grokking forecast and ``forecast_ratio`` = forecast / measured grokking step.
    """

    series: str
    step: float | None = None
    start: float | None = None
    end: float | None = None
    early: float | None = None
    late: float | None = None
    lead: float | None = None
    forecast: float | None = None
    forecast_ratio: float | None = None
    reason: str | None = None


def _crossing(steps: np.ndarray, y: np.ndarray, level: float, rising: bool) -> float | None:
    above = y >= level if rising else y <= level
    hit = np.flatnonzero(above)
    if hit.size == 0:
        return None
    k = int(hit[0])
    if k == 0:
        return float(steps[0])
    x0, x1 = np.log(max(steps[k - 1], 1.0)), np.log(max(steps[k], 1.0))
    y0, y1 = y[k - 1], y[k]
    t = 0.0 if y1 == y0 else float(np.clip((level - y0) / (y1 - y0), 0, 1))
    return float(np.exp(x0 + t * (x1 - x0)))


def find(series: str, steps, values) -> Transition:
    """The transition of one logged series (NaN entries ignored)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    log = series in LOG_SCALE
    ok = np.isfinite(values) & (values > 0 if log else True)
    steps, values = steps[ok], values[ok]
    if len(values) < 5:
        return Transition(series, reason=f"fewer than 5 finite{' positive' if log else ''} logged points")
    if log:
        values = np.log(values)
    if series in AFTER_MINIMUM:
        low = int(np.argmin(values))
        steps, values = steps[low:], values[low:]
        if len(values) < 5:
            return Transition(series, reason="fewer than 5 logged points after its minimum")
    n = max(1, int(round(PLATEAU * len(values))))
    early, late = float(np.median(values[:n])), float(np.median(values[-n:]))
    scale = max(float(np.max(np.abs(values))), 1e-12)
    unit = np.exp if log else float
    if abs(late - early) < max(MIN_CHANGE * scale, np.log(1.5) if log else 0.0):
        return Transition(series, early=unit(early), late=unit(late),
                          reason="no change between the early and late plateaus")
    rising = late > early
    level = lambda q: early + q * (late - early)  # noqa: E731
    return Transition(series, step=_crossing(steps, values, level(0.5), rising),
                      start=_crossing(steps, values, level(0.1), rising),
                      end=_crossing(steps, values, level(0.9), rising), early=float(unit(early)),
                      late=float(unit(late)))


def forecast(transitions: list[Transition | None], grok_steps: list[float | None]) -> None:
    """Fill ``lead``, ``forecast`` and ``forecast_ratio`` of one series' transitions across one sweep (in place).

    ``transitions[i]`` and ``grok_steps[i]`` belong to trajectory i (steps > 0) (None where the series is not logged or it
    never grokked). A forecast needs this trajectory's transition step and the lag of at least one other.
    """
    lags = [float(np.log(g / t.step)) if t is not None and t.step and g else None  # a step 0 has no lag
            for t, g in zip(transitions, grok_steps)]
    for i, t in enumerate(transitions):
        if t is None or t.step is None:
            continue
        t.lead = None if grok_steps[i] is None else grok_steps[i] - t.step
        others = [lag for j, lag in enumerate(lags) if j != i and lag is not None]
        if not others:
            t.reason = t.reason or "no other trajectory of the sweep with a transition and a grokking step"
            continue
        t.forecast = t.step * float(np.exp(np.median(others)))
        if grok_steps[i]:
            t.forecast_ratio = t.forecast / grok_steps[i]

"""The analysis of a whole file: the landscape's, its branches', each trajectory's and each sweep's
(:func:`analyze`); :func:`to_dict` turns it into strict JSON (``None`` for missing numbers, never NaN), and
``landscape.report`` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..plain import plain
from ..status import Status
from . import curvature, effective, hysteresis, plane
from .landscape import Criteria, ScanAnalysis, analyze_scan, best_restart
from .sweeps import SweepFit, forecast_sweeps, weight_decay_sweeps
from .trajectory import TARGETS, TrajectoryAnalysis, analyze_trajectory, incompatibility


@dataclass
class Analysis:
    """Everything :func:`analyze` computes, plus file-level messages."""

    criteria: Criteria
    scan: ScanAnalysis | None
    trajectories: list[TrajectoryAnalysis]
    sweeps: list[SweepFit]
    messages: list[str] = field(default_factory=list)
    down: ScanAnalysis | None = None  # the down branch's landscape, when the file has one
    hysteresis: list = field(default_factory=list)  # landscape.analysis.hysteresis.Gap of each pair of scans
    plane: Any = None  # landscape.analysis.plane.PlaneAnalysis of a two-norm scan
    effective: list = field(default_factory=list)  # landscape.analysis.effective.Sweep of each sweep with spectra
    stationarity: Any = None  # landscape.analysis.curvature.Stationarity of the scan's finished points
    sharpness: Any = None  # landscape.analysis.curvature.Sharpness along the norm (a scan with --curvature)


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
    certified = curvature.stationarity(scan) if scan is not None else None
    sharp = curvature.sharpness(scan, best_restart(scan)) if scan is not None else None
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
    theory = effective.sweeps(trajectories, [r.grokking.step.value for r in results])
    if not theory and any("effective_lambda" in t for t in trajectories):
        messages.append("effective theory: no sweep over two or more training shares (--train-frac) with the other "
                        "hyperparameters shared: no grokking step to fit against lambda")
    return Analysis(criteria, s, results, sweeps, messages, down, gaps, surface, theory, certified, sharp)


def to_dict(analysis: Analysis) -> dict[str, Any]:
    """The analysis as plain JSON types: dataclasses become dicts, NaN and infinities None."""
    out = plain(analysis)
    out["targets"] = dict(TARGETS)
    return out

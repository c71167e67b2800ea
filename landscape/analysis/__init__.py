"""What the stored results say, computed by pure functions (numpy and scipy; no files, no printing, no torch).

Omnigrok's LU mechanism: a run started at a large norm memorizes at once (the L's train loss is low there), then the
only force left is AdamW's decoupled weight decay, which multiplies the norm by ``1 - lr * wd`` per step until the
norm reaches the U's bottom, where the test loss is low. Grokking time then scales as ``1 / wd``.

``landscape``: the critical norm w_c, the test-loss minimum w* and the Goldilocks zone of a scan; ``trajectory``:
the memorization and grokking steps of a run and the steps the landscape predicts; ``sweeps``: weight-decay fits and
forecasts; ``of_file``: all of it for one file, as :func:`analyze` returns it; ``transitions``: order parameters'
jumps; ``hysteresis``: where two scans of one grid disagree; ``plane``: two-norm landscapes; ``phases``: phase
diagrams. Where the data cannot support an answer the value is ``None`` and ``reason`` says why.

May import: ``landscape.config`` and the base modules (``plain``, ``status``).
"""

from .landscape import (Criteria, Estimate, ScanAnalysis, Zone, analyze_scan, best_restart, critical_norm,
                        goldilocks_zone, min_test_loss_norm, train_loss_threshold)
from .of_file import Analysis, analyze, to_dict
from .sweeps import SweepFit, fit_loglog, forecast_sweeps, weight_decay_sweeps
from .trajectory import (TARGETS, Event, Prediction, TrajectoryAnalysis, analyze_trajectory, decay_pace,
                         decay_steps, first_step, incompatibility, predict, run_edge, scheduled_decay_steps)

__all__ = ["Criteria", "Estimate", "ScanAnalysis", "Zone", "analyze_scan", "best_restart", "critical_norm",
           "goldilocks_zone", "min_test_loss_norm", "train_loss_threshold", "Analysis", "analyze", "to_dict",
           "SweepFit", "fit_loglog", "forecast_sweeps", "weight_decay_sweeps", "TARGETS", "Event", "Prediction",
           "TrajectoryAnalysis", "analyze_trajectory", "decay_pace", "decay_steps", "first_step", "incompatibility",
           "predict", "run_edge", "scheduled_decay_steps"]

"""The phase grid's results: the runs of a trained grid classified (``landscape.analysis.phases``), stored as
``/phases``, drawn and reported. ``landscape phases`` calls :func:`publish` when its sweep has finished,
``landscape merge`` after a sharded one."""

from __future__ import annotations

from pathlib import Path

from .. import analysis
from ..analysis.phases import Diagram, Summary, criteria_of, diagram, from_stored, summarize


def stored_config(path):
    """The ``landscape phases`` settings a file records (a ``config.PhasesConfig``), or None."""
    from .. import store
    from ..config.settings import resolve
    from ..config.phases import PhasesConfig

    configs = store.root_configs(path)
    if "phases" not in configs:
        return None
    d = dict(configs["phases"])
    options = d.pop("task_options", {})
    return resolve(PhasesConfig, flags=d, task_options=list(options.items()))


def classify_file(path, cfg) -> Diagram:
    """Classify the runs of ``cfg``'s grid (a ``config.PhasesConfig``) stored in ``path`` and store the diagram
    as ``/phases``. Regression thresholds the config does not give come from the file's scan, if any."""
    from .. import store

    scan = None
    if cfg.train_loss is None or cfg.test_loss is None:
        data = store.read_scan(path)
        if data is not None:
            scan = analysis.analyze_scan(data, criteria_of(cfg.rule()))
    x, y = cfg.axes()
    sweep = cfg.train_config()
    d = diagram(x, y, sweep.seeds, sweep.members(), store.read_trajectories(path), cfg.rule(), cfg.steps, scan)
    store.write_phases(path, d)
    return d


def summary_of(path) -> tuple[Summary, Diagram] | None:
    """The summary of the file's stored phase diagram and the diagram (None when it has none)."""
    from .. import store

    stored = store.read_phases(path)
    if stored is None:
        return None
    d = from_stored(stored)
    return summarize(d), d


def publish(path, cfg, quiet: bool = False) -> Path:
    """Classify the file's grid (:func:`classify_file`; ``cfg`` a ``PhasesConfig``), draw ``PATH-phases.png`` and
    print the report; returns the figure's path. ``landscape merge`` calls it too."""
    from ..figures import phases as phases_plot, landscape as plot
    from .. import report, store

    d = classify_file(path, cfg)
    figure = Path(path).with_name(Path(path).stem + "-phases.png")
    plot.save(phases_plot.phase_figure(store.read_phases(path)), figure)
    if not quiet:
        print(report.phases_report(summarize(d), d))
        print(f"wrote {path} (/phases) and {figure}")
    return figure

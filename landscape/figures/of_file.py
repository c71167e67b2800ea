"""What ``landscape plot`` draws from a file's contents: the landscape (the L/U curves with branches, trajectories
and the analysis, or a two-norm grid's heatmaps), and, where there are trajectories, the grokking, order-parameter,
metrics, norm-fixed comparison and prediction figures, each named after the first."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import analysis
from . import effective as effective_plot, phases as phases_plot, plane as plane_plot, landscape as plot_mod, \
    training as training_plot


def draw(fig_path: Path, scan_data: dict | None, branches: list[dict], trajs: list[dict], result: dict | None,
         meta: dict, phases: dict | None = None) -> list[tuple]:
    """Every figure the data supports, as ``[(Figure, path)]``: ``fig_path`` and ``STEM-KIND.SUFFIX`` beside it.
    ``scan_data`` is the landscape to draw (None: none), ``branches`` the continuation branches drawn over it,
    ``phases`` a stored phase diagram (``fig_path`` itself when there is no landscape)."""
    written = []

    def save(fig, path):
        written.append((fig, path))

    if phases is not None:
        save(phases_plot.phase_figure(phases), fig_path if scan_data is None else
             fig_path.with_name(f"{fig_path.stem}-phases{fig_path.suffix}"))
        if scan_data is None:
            fig_path = fig_path.with_name(f"{fig_path.stem}-runs{fig_path.suffix}")  # named runs: beside it

    plane = scan_data is not None and "plane" in scan_data
    if plane:
        fig, left_out = plane_plot.plane_figure(scan_data, trajs)
        for why in left_out:
            print(f"not drawn on the two-norm landscape: {why}", file=sys.stderr)
        save(fig, fig_path)
    elif scan_data is not None:
        fig = plot_mod.scan_figure(scan_data, branches)
        plot_mod.overlay_trajectories(fig, trajs)
        if result is not None:
            plot_mod.annotate_analysis(fig, result)
        save(fig, fig_path)
    if trajs:
        # the grokking steps and transitions to mark: the stored analysis, or (where it lacks a trajectory) a
        # fresh one with the default criteria
        analyzed = {t["name"]: t for t in (result or {}).get("trajectories") or []}
        if any(t["name"] not in analyzed for t in trajs):
            analyzed = {t["name"]: t for t in analysis.to_dict(analysis.analyze(scan_data, trajs))["trajectories"]}
        save(training_plot.grokking_figure(trajs, analyzed),
             fig_path if scan_data is None else fig_path.with_name(f"{fig_path.stem}-grokking{fig_path.suffix}"))
        drawn = [s for s in training_plot.sweeps(trajs) if any(training_plot.order_series(t) for t in s)]
        for i, sweep in enumerate(drawn):
            landscape = None if plane else scan_data
            if landscape is not None and any(analysis.incompatibility(landscape, t) for t in sweep):
                landscape = None  # another task or norm: the L/U is not this sweep's norm axis
            fig = training_plot.order_norm_figure(sweep, landscape, analyzed, result if landscape is not None else None)
            suffix = "" if len(drawn) == 1 else f"-{i + 1}"
            save(fig, fig_path.with_name(f"{fig_path.stem}-order{suffix}{fig_path.suffix}"))
        fig = training_plot.metrics_figure(trajs, meta)
        if fig is not None:
            save(fig, fig_path.with_name(f"{fig_path.stem}-metrics{fig_path.suffix}"))
        theory = (result or {}).get("effective")
        if theory is None:
            theory = analysis.to_dict(analysis.analyze(scan_data, trajs))["effective"]
        theory = [sw for sw in theory if len({r["train_frac"] for r in sw["rows"]}) >= 2]
        for i, sweep in enumerate(theory):
            suffix = "" if len(theory) == 1 else f"-{i + 1}"
            save(effective_plot.effective_figure(sweep), fig_path.with_name(f"{fig_path.stem}-effective{suffix}"
                                                                             f"{fig_path.suffix}"))
        matched = training_plot.pairs(trajs)
        if matched:
            save(training_plot.comparison_figure(matched), fig_path.with_name(f"{fig_path.stem}-fixnorm{fig_path.suffix}"))
    fig = plot_mod.prediction_figure(result) if result is not None else None
    if fig is not None:
        save(fig, fig_path.with_name(f"{fig_path.stem}-prediction{fig_path.suffix}"))
    return written


"""The phase diagram's figure: cells colored by phase (the seeds' majority) with contours of the log grokking delay,
and beside it the step at which each cell generalized (log color scale); drawn from ``store.read_phases``."""

from __future__ import annotations

from collections import Counter

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..analysis.phases import majority, seed_median
from .plane import _edges

# Okabe-Ito: comprehension, grokking, memorization, confusion
COLORS = {"comprehension": "#009E73", "grokking": "#E69F00", "memorization": "#0072B2", "confusion": "#999999"}


def _axis(ax, which: str, values: np.ndarray, log: bool, label: str) -> np.ndarray:
    edges = _edges(values, log)
    getattr(ax, f"set_{which}scale")("log" if log else "linear")
    getattr(ax, f"set_{which}lim")(edges[0], edges[-1])
    getattr(ax, f"set_{which}label")(label)
    return edges


def phase_figure(d: dict) -> Figure:
    """Two panels over (x, y): the phase map with log10-delay contours, and log10 t_test."""
    x, y = np.asarray(d["x"], float), np.asarray(d["y"], float)
    names = d["phases"]
    logx, logy = bool(d["x_log"]), bool(d["y_log"])
    codes = majority(np.asarray(d["phase"]))
    delay = seed_median(np.asarray(d["t_test"], float) - np.asarray(d["t_train"], float))
    t_test = seed_median(np.asarray(d["t_test"], float))
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    ax_phase, ax_time = fig.subplots(1, 2)
    for ax in (ax_phase, ax_time):
        ex = _axis(ax, "x", x, logx, d["x_axis"])
        ey = _axis(ax, "y", y, logy, d["y_axis"])
    cmap = ListedColormap(["white", *[COLORS[n] for n in names]])
    shown = np.where(codes >= 0, codes + 1, 0)
    ax_phase.pcolormesh(ex, ey, shown.T, cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, len(names) + 1.5), cmap.N),
                        edgecolors="white", linewidth=0.5)
    ax_phase.set_label("phases")
    ok = np.isfinite(delay) & (delay > 0)
    if ok.sum() >= 4 and len(x) > 1 and len(y) > 1:
        z = np.ma.masked_invalid(np.log10(np.where(ok, delay, np.nan)))
        levels = np.arange(np.floor(z.min()), np.ceil(z.max()) + 0.5, 0.5)
        if len(levels) >= 2:
            cs = ax_phase.contour(x, y, z.T, levels=levels, colors="black", linewidths=0.8)
            ax_phase.clabel(cs, fmt=lambda v: f"{v:g}", fontsize=7)
    counts = Counter(int(c) for c in np.asarray(d["phase"]).ravel() if c >= 0)
    total = sum(counts.values()) or 1
    ax_phase.legend(handles=[Patch(color=COLORS[n], label=f"{n} ({counts.get(k, 0) / total:.0%})")
                             for k, n in enumerate(names)], loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
                    title="phase (share of runs)", title_fontsize=8)
    ax_phase.set_title(f"phases; contours: log10 grokking delay (t_test - t_train, steps); gap {d['gap']:g}",
                       fontsize=9)
    if np.isfinite(t_test).any() and np.nanmax(t_test) > 0:
        masked = np.ma.masked_invalid(np.where(t_test > 0, t_test, np.nan))
        mesh = ax_time.pcolormesh(ex, ey, masked.T, cmap="viridis", norm=LogNorm(vmin=max(masked.min(), 1),
                                                                                  vmax=max(masked.max(), 2)))
        fig.colorbar(mesh, ax=ax_time, label="t_test (step)")
    ax_time.set_facecolor("#dddddd")
    ax_time.set_label("t_test")
    ax_time.set_title(f"step of generalization ({d.get('t_test_criterion') or 'test criterion'}); grey: never",
                      fontsize=9)
    fig.suptitle(f"Phase diagram over {d['x_axis']} x {d['y_axis']}, {len(d['seed'])} seed(s), "
                 f"{d['steps']} steps", fontsize=10)
    return fig

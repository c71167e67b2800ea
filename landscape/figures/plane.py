"""The figure of a two-norm landscape: train and test loss over the grid of the two groups' norms, as heatmaps with
contours, the best cell and the default initialization marked, and the free trajectories' paths on top."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis import plane
from .landscape import MARK, _colored_path, plain_log_ticks, trajectory_label


def _edges(centers: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around grid values (midpoints; geometric midpoints on a log axis)."""
    c = np.log(centers) if log else np.asarray(centers, dtype=float)
    if len(c) == 1:
        e = np.array([c[0] - 0.5, c[0] + 0.5]) if not log else np.array([c[0] - 0.1, c[0] + 0.1])
    else:
        mid = (c[1:] + c[:-1]) / 2
        e = np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])
    return np.exp(e) if log else e


def _log_axis(values: np.ndarray) -> bool:
    """Log scale when the norms are spread over more than a factor 4 (log-spaced grids, as a rule)."""
    return len(values) > 1 and values.min() > 0 and values.max() / values.min() > 4


def plane_figure(scan: dict, trajs: list[dict] = ()) -> tuple[Figure, list[str]]:
    """Train and test loss heatmaps over (group 1 norm, group 2 norm); returns the figure and why trajectories
    were left off it."""
    p = scan["plane"]
    maps = plane.grids(scan)
    n1, n2 = np.asarray(p["norm"][0], float), np.asarray(p["norm"][1], float)
    log1, log2 = _log_axis(n1), _log_axis(n2)
    routes, left_out = plane.paths(scan, list(trajs))
    panels = [("train_loss", "train loss"), ("test_loss", "test loss")]
    if scan.get("classification") and np.isfinite(maps["test_acc"]).any():
        panels.append(("test_acc", "test accuracy"))
    fig = Figure(figsize=(5.75 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True)
    w0 = np.asarray(scan["w0"], float)
    g1, g2 = (grp["glob"] for grp in p["groups"])
    top = max([int(t["step"][-1]) for t in trajs if t["name"] in routes and len(t["step"])] + [10])
    steps_norm = Normalize(0, np.log10(top))
    for ax, (key, title) in zip(axes, panels):
        z = maps[key]
        accuracy = key.endswith("acc")
        finite = z[np.isfinite(z) & ((z >= 0) if accuracy else (z > 0))]
        if finite.size == 0:
            ax.set_title(f"{title}: no finished cell")
            continue
        cnorm = Normalize(0, 1) if accuracy else LogNorm(finite.min(), max(finite.max(), finite.min() * 1.0001))
        mesh = ax.pcolormesh(_edges(n1, log1), _edges(n2, log2), np.ma.masked_invalid(z).T, norm=cnorm,
                             cmap="viridis" if accuracy else "magma_r", shading="flat")
        cb = fig.colorbar(mesh, ax=ax, pad=0.01)
        cb.set_label(title)
        if accuracy and min(z.shape) >= 3 and finite.size == z.size:
            cs = ax.contour(n1, n2, z.T, levels=[0.5, 0.9], colors="white", linewidths=0.8, linestyles="solid")
            ax.clabel(cs, fmt=lambda v: f"{v:g}", fontsize=7)
        elif min(z.shape) >= 3 and finite.size == z.size and finite.max() > finite.min() * 1.01:
            logz = np.log10(z)  # contours of log loss: whole decades, interpolated in log space
            levels = np.arange(np.ceil(logz.min()), np.floor(logz.max()) + 1)
            if len(levels) < 2:
                levels = np.linspace(logz.min(), logz.max(), 4)[1:-1]
            cs = ax.contour(n1, n2, logz.T, levels=levels, colors="white", linewidths=0.8, alpha=0.8,
                            linestyles="solid")
            ax.clabel(cs, fmt=lambda v: f"{10 ** v:.2g}", fontsize=7)
        k1, k2 = np.unravel_index(int(np.nanargmax(z) if accuracy else np.nanargmin(z)), z.shape)
        ax.plot(n1[k1], n2[k2], "*", color="#56B4E9", mec="black", ms=13, zorder=6)
        ax.plot(w0[0], w0[1], "+", color=MARK, ms=12, mew=2, zorder=6)
        for t in trajs:
            if t["name"] in routes:
                x, y = routes[t["name"]]
                _colored_path(ax, x, y, np.asarray(t["step"], float), "viridis", steps_norm)
        ax.set_title(title)
        ax.set_xlabel(f"$w_1$: L2 norm of group 1 ({g1})")
        if log1:
            ax.set_xscale("log")
            plain_log_ticks(ax.xaxis)
        if log2:
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)
    axes[0].set_ylabel(f"$w_2$: L2 norm of group 2 ({g2})")
    axes[0].set_xlim(_edges(n1, log1)[[0, -1]])
    axes[0].set_ylim(_edges(n2, log2)[[0, -1]])
    handles = [Line2D([], [], marker="*", color="#56B4E9", mec="black", ms=11, ls=""),
               Line2D([], [], marker="+", color=MARK, ms=10, mew=2, ls="")]
    labels = ["best cell (lowest loss, highest accuracy)", "default initialization $(w_{0,1}, w_{0,2})$"]
    if routes:
        handles += [Line2D([], [], color="#21918c", lw=2), Line2D([], [], marker="o", mfc="white", mec="black", ls=""),
                    Line2D([], [], marker="s", color="black", mec="white", ls="")]
        labels += ["free training (color: log step)", "trajectory start", "trajectory end"]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    cfg = scan.get("config") or {}
    fig.suptitle(f"two-norm reduced landscape: {scan.get('task')}, {cfg.get('steps')} steps per cell"
                 + (f"; {len(routes)} trajectories: " + ", ".join(trajectory_label(t) for t in trajs
                                                                   if t["name"] in routes)[:90] if routes else ""),
                 fontsize=10)
    return fig, left_out

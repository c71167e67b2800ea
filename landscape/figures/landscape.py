"""Figures of the landscape: the reduced landscape's L (train loss) and U (test loss) against the weight norm, with
the trajectories and the analysis on it and (``scan --curvature``) the sharpness under it; the figures' shared
helpers (palette, panel grid). Figures of training along steps are in ``landscape.figures.training``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ..analysis.curvature import stationarity
from ..analysis.landscape import best_restart
from ..store import write_durably, write_errors
from ..status import Status

# Okabe-Ito palette: distinguishable with the common forms of colour blindness.
TRAIN, TEST, MARK = "#0072B2", "#D55E00", "#555555"
FORMATS = (".png", ".pdf", ".svg")


def pick(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Per norm, ``values [K, R, ...]`` at the restart ``best[k]`` (NaN where it is -1)."""
    out = np.full((len(best), *values.shape[2:]), np.nan)
    ok = best >= 0
    out[ok] = values[np.flatnonzero(ok), best[ok]]
    return out


def _band(ax, x, values, status, color):
    """Shade the min-max spread over restarts where more than one restart finished."""
    v = np.where(status == Status.DONE, values, np.nan)
    if v.shape[1] < 2:
        return
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)


BRANCH_STYLE = {"down": ("--", "v"), "up": (":", "^")}  # continuation branches on the L/U figure
TOP, TRACE, SADDLE = "#009E73", "#CC79A7", "#000000"  # the sharpness panel (scan --curvature)


def scan_figure(scan: dict, branches: list[dict] = ()) -> Figure:
    """The L/U figure: loss panel (log y), plus an accuracy panel for classification tasks; continuation
    ``branches`` (``store.read_branches``'s values on the same grid) drawn over it, dashed (down) and dotted (up)."""
    w, w0 = scan["norm"], scan["w0"]
    best = best_restart(scan)
    panels = 2 if scan["classification"] else 1
    curved = "curvature" in scan
    fig = Figure(figsize=(5.2 * panels + 1.6, 6.6 if curved else 4.2), layout="constrained")
    grid = fig.subplots(2 if curved else 1, panels, squeeze=False,
                        gridspec_kw={"height_ratios": [3, 2]} if curved else None)
    axes = grid[0]
    if curved:  # the sharpness panel under the loss panel, on its norm axis
        grid[1][0].sharex(axes[0])
        axes[0].tick_params(labelbottom=False)
    logx = w.max() / w.min() >= 10
    series = [("train_loss", "test_loss", "loss", True)]
    if panels == 2:
        series.append(("train_acc", "test_acc", "accuracy", False))
    for ax, (tr, te, label, logy) in zip(axes, series):
        ax.set_label("landscape")
        main = scan.get("branch", "independent")
        for key, color, name in ((tr, TRAIN, "train"), (te, TEST, "test")):
            _band(ax, w, scan[key], scan["status"], color)
            ls, marker = BRANCH_STYLE.get(main, ("-", "o"))
            ax.plot(w, pick(scan[key], best), ls=ls, marker=marker, color=color, ms=4,
                    label=name if main == "independent" else f"{name}, {main} branch")
            for b in branches:
                ls, marker = BRANCH_STYLE[b["branch"]]
                ax.plot(b["norm"], pick(b[key], best_restart(b)), ls=ls, marker=marker, color=color, ms=4,
                        mfc="none", label=f"{name}, {b['branch']} branch")
        diverged = np.flatnonzero((scan["status"] == Status.DIVERGED).any(axis=1))
        if len(diverged):
            ax.plot(w[diverged], np.full(len(diverged), np.nan), "x", color=MARK, label="diverged")
            for k in diverged:
                ax.axvline(w[k], color=MARK, lw=0.6, ls=":")
        ax.axvline(w0, color=MARK, ls="--", lw=1, label=f"default init $w_0$ = {w0:.3g}")
        if logy:
            logy = log_axis(ax, "y", scan[tr], scan[te], *(b[k] for b in branches for k in (tr, te)))
        if logx:
            ax.set_xscale("log")
        (grid[1][0] if curved and ax is axes[0] else ax).set_xlabel(
            "weight norm $w$ = $\\|\\theta\\|_2$ of the constrained parameters")
        ax.set_ylabel(label)
        top = ax.secondary_xaxis("top", functions=(lambda x: x / w0, lambda a: a * w0))
        top.set_xlabel("$\\alpha = w / w_0$")
        if logx:
            plain_log_ticks(ax.xaxis, top.xaxis)
        ax.grid(alpha=0.3, which="both" if logy else "major", lw=0.5)
    if curved:
        sharpness_panel(grid[1][0], scan, best)
        for ax in grid[1][1:]:
            ax.set_visible(False)
    cfg = scan["config"]
    fig.suptitle(f"Reduced landscape: {scan['task']} ({scan['method_label']}, {cfg['steps']} steps, "
                 f"{cfg['restarts']} restart{'s' if cfg['restarts'] > 1 else ''})", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8, frameon=False)
    return fig


def sharpness_panel(ax, scan: dict, best: np.ndarray) -> None:
    """Draw, at the best restart per norm, the largest eigenvalue (the others of the top K faint), the trace with
    its standard error, and a vertical mark at every norm where a finished point is a saddle
    (``analysis.curvature.stationarity``)."""
    c, w = scan["curvature"], scan["norm"]
    top = pick(c["top"], best)
    others = f"eigenvalues 2..{top.shape[1]}" if top.shape[1] > 2 else "eigenvalue 2"
    for i in range(top.shape[1] - 1, 0, -1):
        ax.plot(w, top[:, i], color=TOP, lw=0.8, alpha=0.35, label=others if i == 1 else None)
    ax.plot(w, top[:, 0], "-o", color=TOP, ms=3.5, label="top eigenvalue $\\lambda_{max}$")
    trace, se = pick(c["trace"], best), pick(c["trace_se"], best)
    ax.plot(w, trace, "-s", color=TRACE, ms=3, label="trace (Hutchinson)")
    ax.fill_between(w, trace - se, trace + se, color=TRACE, alpha=0.25, lw=0)
    for i, norm in enumerate(sorted({s.norm for s in stationarity(scan).saddles})):
        ax.axvline(norm, color=SADDLE, lw=0.8, ls="-.", label="saddle (negative eigenvalue)" if i == 0 else None)
    values = np.concatenate([top.ravel(), trace])
    values = values[np.isfinite(values)]
    if len(values) and (values > 0).all():  # a negative top eigenvalue or trace: a linear axis shows it
        ax.set_yscale("log")
    ax.set_ylabel("Riemannian Hessian")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7, frameon=False, loc="best")


def save(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` to ``path``; the suffix (.png, .pdf, .svg) picks the format.

    The figure is rendered in memory and written whole (``store.write_durably``): a full disk leaves an earlier
    figure at ``path`` as it was, never half a file."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=150, format=path.suffix.lstrip(".").lower() or None)
    kept = ("an earlier figure there is unchanged" if path.exists() else "the figure was not written") + \
        "; the landscape file is unchanged"
    with write_errors(path, kept):
        write_durably(path, buf.getvalue())


def _colored_path(ax, x, y, steps, cmap, norm):
    """A path through (x, y) colored by log step, start (circle) and end (square) marked."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y, steps = x[ok], y[ok], steps[ok]
    if len(x) < 2:
        return
    points = np.stack([x, y], axis=1)
    segments = np.stack([points[:-1], points[1:]], axis=1)
    lc = LineCollection(segments, cmap=cmap, norm=norm, linewidths=2)
    lc.set_array(np.log10(np.maximum(steps[1:], 1)))
    ax.add_collection(lc)
    ax.plot(x[0], y[0], "o", mfc="white", mec="black", ms=6, zorder=5)
    ax.plot(x[-1], y[-1], "s", color="black", mec="white", ms=6, zorder=5)  # the white edge shows on dark cells


def plain_log_ticks(*axes) -> None:
    """Ticks of log ``axes`` (``ax.xaxis``...) at 1, 2 and 5 per decade, labelled as plain numbers."""
    for axis in axes:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())


def overlay_trajectories(fig: Figure, trajs: list[dict]) -> None:
    """Draw each trajectory's (norm, train loss) and (norm, test loss) paths on the L/U loss panel."""
    ax = fig.axes[0]
    if not trajs:
        return
    top = max(max(int(t["step"][-1]) if len(t["step"]) else 1 for t in trajs), 10)
    norm = Normalize(0, np.log10(top))
    for t in trajs:
        steps = t["step"].astype(float)
        _colored_path(ax, t["constrained_norm"], t["train_loss"], steps, "viridis", norm)
        _colored_path(ax, t["constrained_norm"], t["test_loss"], steps, "viridis", norm)
    sm = ScalarMappable(norm=norm, cmap="viridis")
    cb = fig.colorbar(sm, ax=ax, pad=0.01, fraction=0.05)
    cb.set_label("training step (log$_{10}$)")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", mfc="white", mec="black", ls=""),
                Line2D([], [], marker="s", color="black", mec="white", ls="")]
    labels += ["trajectory start", "trajectory end"]
    for leg in fig.legends:
        leg.remove()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    ax.relim()
    ax.autoscale_view()


def panels(n: int, legend_width: float, stacked: bool = False):
    """A figure with ``n`` panels, three to a row (the unused ones hidden), and room for a legend on the right.
    ``stacked``: each panel has a second one under it sharing its x axis; returns ``(fig, top, bottom)``."""
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    if not stacked:
        fig = Figure(figsize=(4.6 * cols + legend_width, 3.4 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[n:]:
            ax.set_visible(False)
        return fig, axes
    fig = Figure(figsize=(4.6 * cols + legend_width, 5.6 * rows), layout="constrained")
    grid = fig.subplots(2 * rows, cols, squeeze=False, gridspec_kw={"height_ratios": [3, 2] * rows})
    top, bottom = grid[0::2].ravel(), grid[1::2].ravel()
    for a, b in zip(top, bottom):
        b.sharex(a)
    for ax in (*top[n:], *bottom[n:]):
        ax.set_visible(False)
    return fig, top, bottom


def fixed(t: dict) -> bool:
    """Whether a trajectory was trained with its norm held fixed (``--fix-norm``)."""
    return bool(t.get("fix_norm", False))


def trajectory_label(t: dict) -> str:
    """The run's hyperparameters in words: weight decay, init scale and seed, and where they are not the defaults
    the training share and the rates of ``--group``."""
    diverged = " (diverged)" if t.get("status") == Status.DIVERGED.label else ""
    extra = "".join(f", {label}={t[key]:g}" for key, label in (("group_lr", "group lr"), ("group_weight_decay",
                                                                                            "group wd"))
                    if key in t) + (f", frac={t['train_frac']:g}" if t.get("train_frac", 1.0) < 1 else "")
    if fixed(t):
        return (f"norm fixed at init scale {t['init_scale']:g}, wd={t['weight_decay']:g}, seed={t['seed']}{extra}"
                f"{diverged}")
    return f"wd={t['weight_decay']:g}, init scale={t['init_scale']:g}, seed={t['seed']}{extra}{diverged}"


def log_axis(ax, which: str, *values) -> bool:
    """Put ``ax``'s ``which`` axis (``"x"`` or ``"y"``) on a log scale when any of ``values`` is finite and
    positive, and say whether it did: matplotlib cannot draw a log axis without such data (a run that diverged
    at its start logs only NaN), so that axis stays linear."""
    if any(np.any(np.isfinite(v) & (v > 0)) for v in (np.asarray(a, float) for a in values)):
        getattr(ax, f"set_{which}scale")("log")
        return True
    return False


def annotate_analysis(fig: Figure, result: dict) -> None:
    """Mark w_c (line, interval shaded) and the Goldilocks zone (shaded) on every L/U panel."""
    scan = result.get("scan") or {}
    w_c, zone = scan.get("w_c") or {}, scan.get("zone") or {}
    lo, hi = (zone.get("low") or {}).get("value"), (zone.get("high") or {}).get("value")
    handles, labels = [], []
    for ax in fig.axes:
        if ax.get_label() != "landscape":
            continue
        if lo is not None and hi is not None:
            h = ax.axvspan(lo, hi, color=TEST, alpha=0.08, lw=0)
            if not any(lab.startswith("Goldilocks zone") for lab in labels):
                handles.append(h)
                rule = zone.get("criterion") or f"test loss < {zone.get('factor', 10):g} x min"
                labels.append(f"Goldilocks zone\n({rule})")  # the criterion in numbers is long: its own line
        if w_c.get("value") is not None:
            if w_c.get("low") is not None and w_c.get("high") is not None:
                ax.axvspan(w_c["low"], w_c["high"], color=TRAIN, alpha=0.12, lw=0)
            h = ax.axvline(w_c["value"], color=TRAIN, ls=":", lw=1.5)
            if "critical norm" not in " ".join(labels):
                handles.append(h)
                labels.append(f"critical norm $w_c$ = {w_c['value']:.3g}")
    if fig.legends:
        old = fig.legends[0]
        handles = list(old.legend_handles) + handles
        labels = [t.get_text() for t in old.get_texts()] + labels
        old.remove()
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)


def prediction_figure(result: dict) -> Figure | None:
    """Measured grokking step against weight decay (log-log), beside the decay-time predictions."""
    trajs = [t for t in result.get("trajectories") or []  # a step 0 has no place on the log axis
             if t["grokking"]["step"]["value"] is not None and t["grokking"]["step"]["value"] > 0]
    predicted = any(p["step"]["value"] is not None for t in trajs for p in t["predictions"])
    if not trajs or (len({t["weight_decay"] for t in trajs}) < 2 and not predicted):
        return None  # one weight decay and nothing predicted: no relation to draw
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    wd = np.array([t["weight_decay"] for t in trajs], dtype=float)
    measured = np.array([t["grokking"]["step"]["value"] for t in trajs], dtype=float)
    ax.plot(wd, measured, "o", color="black", ms=7, label="measured grokking step", zorder=5)
    styles = {"w_c": (TRAIN, "s", "predicted: decay to $w_c$"), "w_star": (TEST, "^", "predicted: decay to $w^*$"),
              "zone_high": ("#009E73", "D", "predicted: decay into the Goldilocks zone"),
              "zone_high_down": ("#CC79A7", "v", "predicted: decay into the zone of the down branch"),
              "run_edge": ("#56B4E9", "P", "predicted: decay until the U, at the run's height, meets the criterion")}
    for i, p in enumerate(trajs[0]["predictions"]):
        color, marker, label = styles.get(p["target"], (MARK, "x", f"predicted: {p['target']}"))
        steps = np.array([t["predictions"][i]["step"]["value"] or np.nan for t in trajs], dtype=float)
        if not np.isfinite(steps).any():
            continue  # a target this file has nothing for (no down branch, say)
        ax.plot(wd, steps, marker, color=color, mfc="none", ms=9, mew=1.5, label=label, zorder=6)
    fits = [s for s in result.get("sweeps") or [] if s.get("slope") is not None]
    title = "Grokking time against weight decay"
    if fits:
        s = fits[-1]
        err = f" ± {s['stderr']:.2f}" if s.get("stderr") is not None else ""
        title += f": slope {s['slope']:.2f}{err} (mechanism: -1)"
    if len(set(wd.tolist())) > 1:
        ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis, ax.yaxis)
    ax.set_xlabel("weight decay")
    ax.set_ylabel("training step")
    fig.suptitle(title, fontsize=10)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig

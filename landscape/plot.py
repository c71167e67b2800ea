"""Figures: the reduced landscape's L (train loss) and U (test loss) against the weight norm."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .report import best_restart, other_series
from .status import Status
from .transitions import LOG_SCALE, ORDER_PARAMETERS

# The order parameters' lines (the losses dashed, on a log axis of their own).
ORDER_STYLE = {"fourier_concentration": ("#009E73", "-"), "circularity": ("#CC79A7", "-"),
               "gini_fourier": ("#E69F00", "-"), "rqi": ("#56B4E9", "-"), "probe_r2": ("#000000", "-"),
               "restricted_loss": ("#000000", "--"), "excluded_loss": ("#888888", "-.")}

# Okabe-Ito palette: distinguishable with the common forms of colour blindness.
TRAIN, TEST, MARK = "#0072B2", "#D55E00", "#555555"
FORMATS = (".png", ".pdf", ".svg")


def _pick(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    out = np.full(len(best), np.nan)
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


def scan_figure(scan: dict, branches: list[dict] = ()) -> Figure:
    """The L/U figure: loss panel (log y), plus an accuracy panel for classification tasks; continuation
    ``branches`` (``store.read_branches``'s values on the same grid) drawn over it, dashed (down) and dotted (up)."""
    w, w0 = scan["norm"], scan["w0"]
    best = best_restart(scan)
    panels = 2 if scan["classification"] else 1
    fig = Figure(figsize=(5.2 * panels + 1.6, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
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
            ax.plot(w, _pick(scan[key], best), ls=ls, marker=marker, color=color, ms=4,
                    label=name if main == "independent" else f"{name}, {main} branch")
            for b in branches:
                ls, marker = BRANCH_STYLE[b["branch"]]
                ax.plot(b["norm"], _pick(b[key], best_restart(b)), ls=ls, marker=marker, color=color, ms=4,
                        mfc="none", label=f"{name}, {b['branch']} branch")
        diverged = np.flatnonzero((scan["status"] == Status.DIVERGED).any(axis=1))
        if len(diverged):
            ax.plot(w[diverged], np.full(len(diverged), np.nan), "x", color=MARK, label="diverged")
            for k in diverged:
                ax.axvline(w[k], color=MARK, lw=0.6, ls=":")
        ax.axvline(w0, color=MARK, ls="--", lw=1, label=f"default init $w_0$ = {w0:.3g}")
        if logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel("weight norm $w$ = $\\|\\theta\\|_2$ of the constrained parameters")
        ax.set_ylabel(label)
        top = ax.secondary_xaxis("top", functions=(lambda x: x / w0, lambda a: a * w0))
        top.set_xlabel("$\\alpha = w / w_0$")
        if logx:
            for axis in (ax.xaxis, top.xaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both" if logy else "major", lw=0.5)
    cfg = scan["config"]
    fig.suptitle(f"Reduced landscape: {scan['task']} ({scan['method_label']}, {cfg['steps']} steps, "
                 f"{cfg['restarts']} restart{'s' if cfg['restarts'] > 1 else ''})", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8, frameon=False)
    return fig


def save(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` to ``path``; the suffix (.png, .pdf, .svg) picks the format."""
    fig.savefig(path, dpi=150)


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
    ax.plot(x[-1], y[-1], "s", color="black", ms=5, zorder=5)


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
                Line2D([], [], marker="s", color="black", ls="")]
    labels += ["trajectory start", "trajectory end"]
    for leg in fig.legends:
        leg.remove()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    ax.relim()
    ax.autoscale_view()


def _panels(n: int, legend_width: float, stacked: bool = False):
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


def order_series(t: dict) -> list[str]:
    """The order parameters a trajectory logged, in ``ORDER_PARAMETERS`` order."""
    return [k for k in ORDER_PARAMETERS if k in t]


def _value_at(steps, values, at: float, log: bool) -> float:
    """A series' value at step ``at``, interpolated in log step (and in log value for a loss)."""
    ok = np.isfinite(values) & (values > 0 if log else True)
    x, y = np.log(np.maximum(steps[ok], 1)), values[ok]
    v = np.interp(np.log(max(at, 1)), x, np.log(y) if log else y)
    return float(np.exp(v) if log else v)


def _order_panel(ax, t: dict, mark: dict | None):
    """The order parameters of ``t`` against log step, the losses on a log twin axis; each transition marked.
    Returns the twin axis (or None)."""
    step = np.maximum(t["step"], 1).astype(float)
    found = {tr["series"]: tr for tr in (mark or {}).get("transitions") or []}
    twin = None
    for k in order_series(t):
        log = k in LOG_SCALE
        if log and twin is None:
            twin = ax.twinx()
            twin.set_yscale("log")
            twin.set_ylabel("progress loss (log)")
        where = twin if log else ax
        color, ls = ORDER_STYLE[k]
        where.plot(step, t[k], color=color, ls=ls, lw=1.3)
        at = (found.get(k) or {}).get("step")
        if at is not None:
            where.plot(at, _value_at(step, np.asarray(t[k], float), at, log), "o", mfc=color, mec="white",
                       ms=7, zorder=6)
    lows = [np.nanmin(np.asarray(t[k], float)) for k in order_series(t) if k not in LOG_SCALE]
    lows = [v for v in lows if np.isfinite(v)]
    ax.set_ylim(min([-0.03] + [v - 0.03 for v in lows]), 1.03)  # a probe's R² may be negative
    ax.set_ylabel("order parameter")
    ax.set_xlabel("optimization step")
    ax.grid(alpha=0.3, lw=0.5)
    return twin


def _grokking_line(axes, mark: dict | None) -> None:
    g = (((mark or {}).get("grokking") or {}).get("step") or {}).get("value")
    if g is not None:
        for ax in axes:
            ax.axvline(g, color="black", ls=":", lw=1.2, zorder=1)


def grokking_figure(trajs: list[dict], marks: dict[str, dict] | None = None) -> Figure:
    """Per trajectory: accuracy (or loss) against log step, with the weight norm on a twin axis; where the
    trajectory logged order parameters, a panel under it draws them, with their transitions and the grokking
    step (``marks[name]``: the trajectory's analysis, ``landscape.analysis.to_dict``) marked."""
    n = len(trajs)
    marks = marks or {}
    stacked = any(order_series(t) for t in trajs)
    if stacked:
        fig, axes, lower = _panels(n, legend_width=1.9, stacked=True)
    else:
        fig, axes = _panels(n, legend_width=1.2)
        lower = [None] * n
    shown: dict[str, None] = {}
    for ax, low, t in zip(axes, lower, trajs):
        step = np.maximum(t["step"], 1)
        if t["classification"]:
            ax.plot(step, t["train_acc"], color=TRAIN, label="train")
            ax.plot(step, t["test_acc"], color=TEST, label="test")
            ax.set_ylabel("accuracy")
            ax.set_ylim(-0.03, 1.03)
        else:
            ax.plot(step, t["train_loss"], color=TRAIN, label="train")
            ax.plot(step, t["test_loss"], color=TEST, label="test")
            ax.set_yscale("log")
            ax.set_ylabel("loss")
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_title(_label(t), fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        twin = ax.twinx()
        twin.plot(step, t["constrained_norm"], color=MARK, ls="--", lw=1.2, label="weight norm")
        twin.set_ylabel("weight norm $w$", color=MARK)
        twin.tick_params(axis="y", colors=MARK)
        mark = marks.get(t["name"])
        if low is not None:
            if order_series(t):
                _order_panel(low, t, mark)
                ax.set_xlabel("")
                shown.update(dict.fromkeys(order_series(t)))
            else:
                low.set_visible(False)
        _grokking_line([a for a in (ax, low) if a is not None], mark)
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color=MARK, ls="--"))
    labels.append("weight norm (right axis)")
    if any(((marks.get(t["name"]) or {}).get("grokking") or {}).get("step", {}).get("value") is not None
           for t in trajs):
        handles.append(Line2D([], [], color="black", ls=":"))
        labels.append("grokking step")
    for k in shown:
        handles.append(Line2D([], [], color=ORDER_STYLE[k][0], ls=ORDER_STYLE[k][1]))
        labels.append(k + (" (log, right)" if k in LOG_SCALE else ""))
    if shown:
        handles.append(Line2D([], [], marker="o", color=MARK, ls=""))
        labels.append("transition (half-way)")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    kinds = {fixed(t) for t in trajs}
    fig.suptitle({frozenset({False}): "Free training (AdamW)", frozenset({True}): "Norm-constrained training"}
                 .get(frozenset(kinds), "Free and norm-constrained training"), fontsize=10)
    return fig


def fixed(t: dict) -> bool:
    """Whether a trajectory was trained with its norm held fixed (``--fix-norm``)."""
    return bool(t.get("fix_norm", False))


def _label(t: dict) -> str:
    if fixed(t):
        return f"norm fixed at init scale {t['init_scale']:g}, wd={t['weight_decay']:g}, seed={t['seed']}"
    return f"wd={t['weight_decay']:g}, init scale={t['init_scale']:g}, seed={t['seed']}"


def pairs(trajs: list[dict]) -> list[tuple[dict, dict]]:
    """Every (free, norm-constrained) pair of trajectories with the same seed and learning rate."""
    return [(a, b) for a in trajs if not fixed(a) for b in trajs
            if fixed(b) and a["seed"] == b["seed"] and a["lr"] == b["lr"]]


def comparison_figure(matched: list[tuple[dict, dict]]) -> Figure:
    """Free against norm-constrained training, one panel per pair: accuracy (or loss) against log step."""
    n = len(matched)
    fig, axes = _panels(n, legend_width=1.6)
    for ax, (free, fix) in zip(axes, matched):
        for t, ls in ((free, "-"), (fix, "--")):
            step = np.maximum(t["step"], 1)
            key = "acc" if t["classification"] else "loss"
            ax.plot(step, t[f"train_{key}"], color=TRAIN, ls=ls)
            ax.plot(step, t[f"test_{key}"], color=TEST, ls=ls)
        if free["classification"]:
            ax.set_ylabel("accuracy")
            ax.set_ylim(-0.03, 1.03)
        else:
            ax.set_yscale("log")
            ax.set_ylabel("loss")
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_title(f"free: wd={free['weight_decay']:g}, init {free['init_scale']:g}\n"
                     f"fixed norm: init {fix['init_scale']:g} (seed {free['seed']}, lr {free['lr']:g})", fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], color=TRAIN), Line2D([], [], color=TEST), Line2D([], [], color="black"),
               Line2D([], [], color="black", ls="--")]
    labels = ["train", "test", "free (AdamW, weight decay)", "norm fixed (--fix-norm)"]
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle("Free against norm-constrained training", fontsize=10)
    return fig


def metrics_figure(trajs: list[dict], meta: dict[str, tuple[str, str]]) -> Figure | None:
    """Every logged series the other figures do not show, against log step: one panel per metric
    (a family such as ``group_norm/<group>`` shares a panel, one line per key), one line style per trajectory."""
    keys = sorted(other_series(trajs), key=lambda k: k == "norm")  # the whole norm last
    panels: dict[str, list[str]] = {}
    for k in keys:
        panels.setdefault(k.split("/", 1)[0], []).append(k)
    if not panels:
        return None
    cols = min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.6 * cols + 1.6, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
    styles = ["-", "--", ":", "-."]
    for ax, (panel, series) in zip(axes, panels.items()):
        for i, t in enumerate(trajs):
            step = np.maximum(t["step"], 1)
            for j, key in enumerate(series):
                if key not in t:
                    continue
                label = key.split("/", 1)[1] if "/" in key else key
                ax.plot(step, t[key], color=colors[j % len(colors)], ls=styles[i % len(styles)], lw=1.3,
                        label=label if i == 0 else None)
        units, desc = meta.get(series[0], ("", panel))
        ax.set_title(textwrap.fill(desc.split(":")[0].replace(" {key}", ""), 55), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_ylabel(f"{panel}" + (f" [{units}]" if units else ""))
        ax.grid(alpha=0.3, lw=0.5)
        if len(series) > 1:
            ax.legend(fontsize=7, frameon=False, ncols=2)
    if len(trajs) > 1:
        handles = [Line2D([], [], color=MARK, ls=styles[i % len(styles)]) for i in range(len(trajs))]
        fig.legend(handles, [t["name"] for t in trajs], loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle("Logged metrics", fontsize=10)
    return fig


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
            if not handles or labels[-1] != "Goldilocks zone":
                handles.append(h)
                labels.append(f"Goldilocks zone (test loss < {zone.get('factor', 10):g} x min)")
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
    trajs = [t for t in result.get("trajectories") or [] if t["grokking"]["step"]["value"] is not None]
    if not trajs:
        return None
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    wd = np.array([t["weight_decay"] for t in trajs], dtype=float)
    measured = np.array([t["grokking"]["step"]["value"] for t in trajs], dtype=float)
    ax.plot(wd, measured, "o", color="black", ms=7, label="measured grokking step", zorder=5)
    styles = {"w_c": (TRAIN, "s", "predicted: decay to $w_c$"), "w_star": (TEST, "^", "predicted: decay to $w^*$"),
              "zone_high": ("#009E73", "D", "predicted: decay into the Goldilocks zone"),
              "zone_high_down": ("#CC79A7", "v", "predicted: decay into the zone of the down branch")}
    for i, p in enumerate(trajs[0]["predictions"]):
        color, marker, label = styles.get(p["target"], (MARK, "x", f"predicted: {p['target']}"))
        steps = np.array([t["predictions"][i]["step"]["value"] or np.nan for t in trajs], dtype=float)
        if not np.isfinite(steps).any():
            continue  # a target this file has nothing for (no down branch, say)
        ax.plot(wd, steps, marker, color=color, mfc="none", ms=7, label=label)
    fits = [s for s in result.get("sweeps") or [] if s.get("slope") is not None]
    title = "Grokking time against weight decay"
    if fits:
        s = fits[-1]
        err = f" ± {s['stderr']:.2f}" if s.get("stderr") is not None else ""
        title += f": slope {s['slope']:.2f}{err} (mechanism: -1)"
    if len(set(wd.tolist())) > 1:
        ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weight decay")
    ax.set_ylabel("training step")
    fig.suptitle(title, fontsize=10)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def sweeps(trajs: list[dict]) -> list[list[dict]]:
    """The trajectories grouped into sweeps, as ``landscape analyze`` forecasts within them: same lr, batch
    size and kind (free or norm-fixed); file order kept."""
    groups: dict[tuple, list[dict]] = {}
    for t in trajs:
        groups.setdefault((t.get("lr"), t.get("batch_size"), fixed(t)), []).append(t)
    return list(groups.values())


def order_norm_figure(sweep: list[dict], scan: dict | None = None, marks: dict[str, dict] | None = None,
                      result: dict | None = None) -> Figure | None:
    """One sweep's order parameters against the weight norm, one panel per order parameter, one path per
    trajectory (start circle, end square, transition star), over the scan's L and U (train and test loss of
    the best restart, on a log twin axis) and its Goldilocks zone when ``result`` has one."""
    keys = [k for k in ORDER_PARAMETERS if any(k in t for t in sweep)]
    if not keys:
        return None
    marks = marks or {}
    fig, axes = _panels(len(keys), legend_width=2.2)
    order = sorted(range(len(sweep)), key=lambda i: (sweep[i].get("weight_decay") or 0, i))
    cmap = colormaps["viridis"]
    colors = {i: cmap(0.85 * r / max(len(order) - 1, 1)) for r, i in enumerate(order)}
    norms = np.concatenate([np.asarray(t["constrained_norm"], float) for t in sweep])
    norms = norms[np.isfinite(norms) & (norms > 0)]
    logx = norms.size > 0 and norms.max() / norms.min() >= 10
    zone = ((result or {}).get("scan") or {}).get("zone") or {}
    lo, hi = (zone.get("low") or {}).get("value"), (zone.get("high") or {}).get("value")
    for ax, k in zip(axes, keys):
        log = k in LOG_SCALE
        if scan is not None:
            twin = ax.twinx()
            best = best_restart(scan)
            for key, color, name in (("train_loss", TRAIN, "L: train loss"), ("test_loss", TEST, "U: test loss")):
                twin.plot(scan["norm"], _pick(scan[key], best), "-", color=color, alpha=0.45, lw=2.5, label=name,
                          zorder=1)
            twin.set_yscale("log")
            twin.set_ylabel("scan loss (log)")
            ax.set_zorder(twin.get_zorder() + 1)  # the trajectories above the landscape
            ax.patch.set_visible(False)
        if lo is not None and hi is not None:
            ax.axvspan(lo, hi, color=TEST, alpha=0.08, lw=0)
        for i, t in enumerate(sweep):
            if k not in t:
                continue
            x, y = np.asarray(t["constrained_norm"], float), np.asarray(t[k], float)
            ok = np.isfinite(x) & np.isfinite(y) & (y > 0 if log else True)
            if ok.sum() < 1:
                continue
            ax.plot(x[ok], y[ok], color=colors[i], lw=1.4)
            ax.plot(x[ok][0], y[ok][0], "o", mfc="white", mec=colors[i], ms=6, zorder=5)
            ax.plot(x[ok][-1], y[ok][-1], "s", color=colors[i], ms=5, zorder=5)
            at = next((tr.get("step") for tr in (marks.get(t["name"]) or {}).get("transitions") or []
                       if tr["series"] == k), None)
            if at is not None:
                steps = np.maximum(np.asarray(t["step"], float), 1)
                ax.plot(_value_at(steps, x, at, False), _value_at(steps, y, at, log), "*", color=colors[i],
                        mec="black", mew=0.5, ms=12, zorder=6)
        if log:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        if norms.size:  # the sweep's norms, not the whole scan: the landscape is the background
            ax.set_xlim(norms.min() / 1.1, norms.max() * 1.1)
        ax.set_xlabel("weight norm $w$ (constrained parameters)")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], color=colors[i], lw=1.4) for i in order]
    labels = [_label(sweep[i]) for i in order]
    handles += [Line2D([], [], marker="o", mfc="white", mec="black", ls=""),
                Line2D([], [], marker="s", color="black", ls=""),
                Line2D([], [], marker="*", color=MARK, mec="black", ls="", ms=10)]
    labels += ["start", "end", "transition (half-way)"]
    if scan is not None:
        handles += [Line2D([], [], color=TRAIN, alpha=0.45, lw=2.5), Line2D([], [], color=TEST, alpha=0.45, lw=2.5)]
        labels += ["scan: train loss (L)", "scan: test loss (U)"]
    if lo is not None and hi is not None:
        handles.append(Line2D([], [], color=TEST, alpha=0.2, lw=8))
        labels.append("Goldilocks zone")
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    t0 = sweep[0]
    kind = "norm-constrained" if fixed(t0) else "free"
    fig.suptitle(f"Order parameters against the weight norm: {kind} sweep, lr {t0.get('lr'):g}"
                 + (f", batch {t0['batch_size']}" if t0.get("batch_size") else ", full batch"), fontsize=10)
    return fig

"""Figures of training along steps: accuracy (or loss) with the weight norm and the order parameters under it,
free against norm-constrained runs, every other logged metric, and each sweep's order parameters against the
weight norm over the scan's L/U."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .landscape import MARK, TEST, TRAIN, fixed, log_axis, panels, pick, trajectory_label
from ..analysis.landscape import best_restart
from ..report import other_series
from ..analysis.transitions import LOG_SCALE, ORDER_PARAMETERS

# The order parameters' lines (the losses dashed, on a log axis of their own).
ORDER_STYLE = {"fourier_concentration": ("#009E73", "-"), "circularity": ("#CC79A7", "-"),
               "gini_fourier": ("#E69F00", "-"), "rqi": ("#56B4E9", "-"), "effective_rqi": ("#56B4E9", "--"),
               "probe_r2": ("#000000", "-"),
               "restricted_loss": ("#000000", "--"), "excluded_loss": ("#888888", "-.")}



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
            log_axis(twin, "y", *(t[j] for j in order_series(t) if j in LOG_SCALE))
            twin.set_ylabel("progress loss (log)")
        where = twin if log else ax
        color, ls = ORDER_STYLE[k]
        where.plot(step, t[k], color=color, ls=ls, lw=1.3)
        at = (found.get(k) or {}).get("step")
        if at is not None:
            where.plot(at, _value_at(step, np.asarray(t[k], float), at, log), "o", mfc=color, mec="white",
                       ms=7, zorder=6)
    values = [np.asarray(t[k], float) for k in order_series(t) if k not in LOG_SCALE]
    lows = [v[np.isfinite(v)].min() for v in values if np.isfinite(v).any()]
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
        fig, axes, lower = panels(n, legend_width=1.9, stacked=True)
    else:
        fig, axes = panels(n, legend_width=1.2)
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
            log_axis(ax, "y", t["train_loss"], t["test_loss"])
            ax.set_ylabel("loss")
        key = "acc" if t["classification"] else "loss"
        if not any(np.isfinite(np.asarray(t[f"{s}_{key}"], float)).any() for s in ("train", "test")):
            ax.text(0.5, 0.5, "no finite values logged", transform=ax.transAxes, ha="center", va="center",
                    color=MARK, fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_title(trajectory_label(t), fontsize=9)
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


def pairs(trajs: list[dict]) -> list[tuple[dict, dict]]:
    """Every (free, norm-constrained) pair of trajectories with the same seed and learning rate."""
    return [(a, b) for a in trajs if not fixed(a) for b in trajs
            if fixed(b) and a["seed"] == b["seed"] and a["lr"] == b["lr"]]


def comparison_figure(matched: list[tuple[dict, dict]]) -> Figure:
    """Free against norm-constrained training, one panel per pair: accuracy (or loss) against log step."""
    n = len(matched)
    fig, axes = panels(n, legend_width=1.6)
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
            log_axis(ax, "y", *(t[k] for t in (free, fix) for k in ("train_loss", "test_loss")))
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


UNCERTAINTIES = ("residual", "trace_se")  # a family's error bars (sharpness): in the file, not drawn as lines


def metrics_figure(trajs: list[dict], meta: dict[str, tuple[str, str]]) -> Figure | None:
    """Every logged series the other figures do not show, against log step: one panel per metric
    (a family such as ``group_norm/<group>`` shares a panel, one line per key, its ``UNCERTAINTIES`` left out;
    a log or symmetric-log y axis where the values span more than three decades), one line style per
    trajectory."""
    keys = sorted(other_series(trajs), key=lambda k: k == "norm")  # the whole norm last
    panels: dict[str, list[str]] = {}
    for k in keys:
        if k.rsplit("/", 1)[-1] not in UNCERTAINTIES:
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
        values = np.concatenate([np.asarray(t[k], float) for t in trajs for k in series if k in t])
        values = values[np.isfinite(values)]
        spread = np.abs(values[values != 0]) if len(values) else values
        if len(spread) and spread.max() > 1000 * spread.min():  # decades apart (top eigenvalue and trace)
            if (values > 0).all():
                ax.set_yscale("log")
            else:
                ax.set_yscale("symlog", linthresh=float(np.quantile(spread, 0.1)))
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


def sweeps(trajs: list[dict]) -> list[list[dict]]:
    """The trajectories grouped into sweeps, as ``landscape analyze`` forecasts within them: same lr, batch
    size and kind (free or norm-fixed); file order kept."""
    groups: dict[tuple, list[dict]] = {}
    for t in trajs:
        groups.setdefault((t.get("lr"), t.get("group_lr"), t.get("group_weight_decay"), t.get("batch_size"), fixed(t)),
                          []).append(t)
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
    fig, axes = panels(len(keys), legend_width=2.2)
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
                twin.plot(scan["norm"], pick(scan[key], best), "-", color=color, alpha=0.45, lw=2.5, label=name,
                          zorder=1)
            log_axis(twin, "y", scan["train_loss"], scan["test_loss"])
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
            log_axis(ax, "y", *(t[k] for t in sweep if k in t))
        if logx:
            ax.set_xscale("log")
        if norms.size:  # the sweep's norms, not the whole scan: the landscape is the background
            ax.set_xlim(norms.min() / 1.1, norms.max() * 1.1)
        ax.set_xlabel("weight norm $w$ (constrained parameters)")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [Line2D([], [], color=colors[i], lw=1.4) for i in order]
    labels = [trajectory_label(sweep[i]) for i in order]
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

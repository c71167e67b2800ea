"""Liu et al.'s effective theory against a sweep over the training share: the measured steps (each share's seeds:
median and range) and ``c / lambda``, with the critical fraction below which the training set does not determine
the structure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .landscape import MARK

STYLE = {"grokking": ("#D55E00", "o", "grokking step"), "rqi": ("#56B4E9", "s", "RQI >= 0.95"),
         "effective_rqi": ("#888888", "^", "effective RQI >= 0.95")}


def effective_figure(sweep: dict) -> Figure:
    """``sweep``: one ``analysis.to_dict(...)["effective"]`` entry (``analysis.effective.Sweep`` as plain data)."""
    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    lam_name = f"\\lambda_{sweep['index']}"
    rows = sweep["rows"]
    fracs = np.array(sorted({r["train_frac"] for r in rows}))
    for measure, (color, marker, label) in STYLE.items():
        fit = sweep["fits"][measure]
        med, low, high, xs = [], [], [], []
        for f in fracs:
            steps = [r["measured"][measure] for r in rows if r["train_frac"] == f and r["measured"][measure]]
            if steps:
                xs.append(f)
                med.append(np.median(steps))
                low.append(min(steps))
                high.append(max(steps))
        if not xs:
            continue
        med, low, high = np.array(med), np.array(low), np.array(high)
        slope = ("" if fit["slope"] is None else
                 f", slope {fit['slope']:.2f} $\\pm$ {fit['slope_se']:.2f}")
        ax.errorbar(xs, med, yerr=[med - low, high - med], fmt=marker, color=color, ms=6, capsize=3,
                    label=f"{label}{slope}")
        lam = {r["train_frac"]: r["lam"] for r in rows if r["lam"]}
        if fit["c"] is not None and lam:
            x = np.array(sorted(lam))
            ax.plot(x, fit["c"] / np.array([lam[f] for f in x]), color=color, ls="--", lw=1.3,
                    label=f"$c / {lam_name}$ fitted to it")
    crit = sweep["critical_fraction"]
    if crit is not None:
        ax.axvline(crit, color=MARK, ls=":", lw=1.3, label=f"critical fraction {crit:g} (${lam_name} > 0$ from here)")
        ax.axvspan(min(fracs.min(), crit) - 0.05, crit, color=MARK, alpha=0.08, lw=0)
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 6)  # room for the legend above the data
    ax.set_xlim(fracs.min() - 0.05, fracs.max() + 0.05)
    ax.set_xlabel("training share (of the task's training split)")
    ax.set_ylabel("optimization step")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7.5, loc="upper right", ncols=2, title="steps (seeds: median and range; slope against "
              f"${lam_name}$, theory -1)", title_fontsize=7.5)
    ax.set_title(f"Effective theory (Liu et al. 2022): steps against training share\n{sweep['key']}", fontsize=9)
    return fig

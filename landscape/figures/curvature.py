"""The sharpness panel under the L/U: the Riemannian Hessian's top eigenvalues and trace against the norm
(``scan --curvature``), the saddles marked."""

from __future__ import annotations

import numpy as np

from ..analysis.curvature import stationarity

TOP, TRACE, SADDLE = "#009E73", "#CC79A7", "#000000"  # Okabe-Ito, apart from the L/U's blue and orange


def _pick(values: np.ndarray, best: np.ndarray) -> np.ndarray:
    out = np.full((len(best), *values.shape[2:]), np.nan)
    ok = best >= 0
    out[ok] = values[np.flatnonzero(ok), best[ok]]
    return out


def sharpness_panel(ax, scan: dict, best: np.ndarray) -> None:
    """Draw, at the best restart per norm, the largest eigenvalue (the others of the top K faint), the trace with
    its standard error, and a vertical mark at every norm where a finished point is a saddle
    (``analysis.curvature.stationarity``)."""
    c, w = scan["curvature"], scan["norm"]
    top = _pick(c["top"], best)
    for i in range(top.shape[1] - 1, 0, -1):
        ax.plot(w, top[:, i], color=TOP, lw=0.8, alpha=0.35, label=(f"eigenvalues 2..{top.shape[1]}" if top.shape[1] > 2 else "eigenvalue 2") if i == 1 else None)
    ax.plot(w, top[:, 0], "-o", color=TOP, ms=3.5, label="top eigenvalue $\\lambda_{max}$")
    trace, se = _pick(c["trace"], best), _pick(c["trace_se"], best)
    ax.plot(w, trace, "-s", color=TRACE, ms=3, label="trace (Hutchinson)")
    ax.fill_between(w, trace - se, trace + se, color=TRACE, alpha=0.25, lw=0)
    st = stationarity(scan)
    saddle = np.isin(np.arange(len(w)), [np.flatnonzero(w == s.norm)[0] for s in st.saddles])
    for k in np.flatnonzero(saddle):
        ax.axvline(w[k], color=SADDLE, lw=0.8, ls="-.", label="saddle (negative eigenvalue)"
                   if k == np.flatnonzero(saddle)[0] else None)
    values = np.concatenate([top.ravel(), trace])
    values = values[np.isfinite(values)]
    if len(values) and (values > 0).all():  # a negative top eigenvalue or trace: a linear axis shows it
        ax.set_yscale("log")
    ax.set_ylabel("Riemannian Hessian")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7, frameon=False, loc="best")

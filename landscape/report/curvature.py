"""The certificates of a scan's points and the sharpness along its norm, as text (``analysis.curvature``)."""

from __future__ import annotations

from ..analysis.curvature import ROUNDING


def _where(alpha) -> str:
    return (f"alpha {alpha:.4g}" if not isinstance(alpha, list) else
            "alpha " + ", ".join(f"{a:.4g}" for a in alpha))


def stationarity_lines(st) -> list[str]:
    """First order (the tangent-gradient norm) and, with curvature, second order, over the finished points."""
    if st is None or not st.points:
        return []
    lines = [f"stationarity ({st.points} finished points): tangent-gradient norm at most {st.grad_norm_max:.3g} "
             f"({_where(st.grad_norm_at)}), median {st.grad_norm_median:.3g}"]
    if not st.second_order:
        lines.append("  second order: not computed (scan --curvature K computes the Riemannian Hessian)")
    else:
        if st.saddles:
            lines.append(f"  second order: {len(st.saddles)} of {st.points} points are saddles on their spheres (the "
                         "Riemannian Hessian has an eigenvalue at or below a negative Ritz value):")
        for s in st.saddles[:8]:
            lines.append(f"    {_where(s.alpha)}, restart {s.restart}: smallest Ritz value {s.smallest:.4g}")
        if len(st.saddles) > 8:
            lines.append(f"    ... and {len(st.saddles) - 8} more")
        if st.minima:
            unseen = ("the Lanczos runs spanned the whole tangent space" if st.residual_max == 0 else
                      f"negative curvature smaller than the Lanczos residual bound, at most {st.residual_max:.2g}, "
                      "may go unseen (raise --lanczos)")
            lines.append(f"  second order: no negative curvature beyond rounding at {'the other ' if st.saddles else ''}"
                         f"{st.minima} points (smallest Ritz value >= -{ROUNDING:g} x the top eigenvalue); {unseen}")
    return lines


def sharpness_lines(sh) -> list[str]:
    """The top eigenvalue and the trace along the norm, and where the top eigenvalue changes fastest."""
    if sh is None or not sh.norm:
        return []
    k_max, k_min = max(range(len(sh.top)), key=sh.top.__getitem__), min(range(len(sh.top)), key=sh.top.__getitem__)
    lines = [f"sharpness (best restart per norm): top eigenvalue {sh.top[k_min]:.4g} at w {sh.norm[k_min]:.4g} to "
             f"{sh.top[k_max]:.4g} at w {sh.norm[k_max]:.4g}; trace {min(sh.trace):.4g} to {max(sh.trace):.4g}"]
    if sh.fastest_between is not None:
        a, b = sh.fastest_between
        lines.append(f"  the top eigenvalue changes fastest between w {a:.4g} and {b:.4g} "
                     f"({sh.rate_kind} = {sh.fastest_rate:.3g})")
    return lines

"""The certificates of a scan's points and the sharpness along its norm, as text (``analysis.curvature``)."""

from __future__ import annotations

from ..analysis.curvature import STATIONARY


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
        return lines + ["  second order: not computed (scan --curvature K computes the Riemannian Hessian)"]
    for points, what in ((st.saddles, "saddles on their spheres: negative curvature (the Riemannian Hessian has "
                                      "an eigenvalue at or below a negative Ritz value) at a stationary point"),
                         (st.unsettled, f"not stationary: negative curvature where the tangent gradient exceeds "
                                        f"{STATIONARY:g} |lambda_min| w (the optimizer had not stopped there)")):
        if points:
            lines.append(f"  second order: {len(points)} of {st.points} points are {what}:")
        lines += [f"    {_where(s.alpha)}, restart {s.restart}: smallest Ritz value {s.smallest:.4g}, tangent "
                  f"gradient {s.grad_norm:.3g}" for s in points[:8]]
        if len(points) > 8:
            lines.append(f"    ... and {len(points) - 8} more")
    if st.minima:
        others = "the other " if st.saddles or st.unsettled else ""
        lines.append(f"  second order: no negative Ritz value beyond rounding at {others}{st.minima} points; "
                     f"Lanczos can miss eigenvalues it has not converged to (residual bound at most "
                     f"{st.residual_max:.2g}; raise --lanczos to look further)")
    return lines


def sharpness_lines(sh) -> list[str]:
    """The top eigenvalue and the trace along the norm, and where the top eigenvalue changes fastest."""
    if sh is None or not sh.norm:
        return []
    k_max, k_min = max(range(len(sh.top)), key=sh.top.__getitem__), min(range(len(sh.top)), key=sh.top.__getitem__)
    if len(sh.top) == 1:
        return [f"sharpness: top eigenvalue {sh.top[0]:.4g}, trace {sh.trace[0]:.4g} at w {sh.norm[0]:.4g}"]
    lines = [f"sharpness (best restart per norm): top eigenvalue {sh.top[k_min]:.4g} at w {sh.norm[k_min]:.4g} to "
             f"{sh.top[k_max]:.4g} at w {sh.norm[k_max]:.4g}; trace {min(sh.trace):.4g} to {max(sh.trace):.4g}"]
    if sh.fastest_between is not None:
        a, b = sh.fastest_between
        lines.append(f"  the top eigenvalue changes fastest between w {a:.4g} and {b:.4g} "
                     f"({sh.rate_kind} = {sh.fastest_rate:.3g})")
    return lines

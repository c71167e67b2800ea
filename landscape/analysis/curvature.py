"""What a scan's certificates say: first order (the tangent gradient) and, with ``--curvature``, second order.

At a constrained minimizer the gradient's tangent part vanishes and the Riemannian Hessian (``scan --curvature``)
has no negative eigenvalue. :func:`stationarity` reads both over the finished points of a scan.

A Ritz value is a Rayleigh quotient, so the Hessian has an eigenvalue at or below the smallest one: a smallest
Ritz value below zero by more than rounding (:func:`bound`: ``ROUNDING`` of the operator's scale, the larger of
its extreme Ritz values in magnitude plus the curvature term's factor) proves negative curvature. The point is a
*saddle* when it is also stationary at that curvature's scale: its tangent gradient is below
``STATIONARY |lambda_min| w`` (the gradient the curvature builds over a step of 1 % of the norm); otherwise the
optimizer had not stopped there, and the negative curvature says only that. The converse is evidence, not proof:
a smallest Ritz value >= 0 means Lanczos met no negative curvature; it can miss eigenvalues it has not converged to.

Along the norm axis (the best restart per norm, as the curves are read), :func:`sharpness` follows the top
eigenvalue and says where it changes fastest: the largest |d log lambda_max / d log w| between neighbouring norms
where lambda_max > 0 throughout, else the largest |d lambda_max / d w|.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..status import Status

ROUNDING = 1e-5  # of the operator's scale: 100x the float32 error measured against float64 (docs/curvature.md)
STATIONARY = 0.01  # a saddle's tangent gradient is below STATIONARY |lambda_min| w


@dataclass
class Saddle:
    """A finished point with negative curvature beyond rounding (a saddle where it is stationary)."""

    norm: float | list[float]  # [2] on a two-norm grid
    alpha: float | list[float]
    restart: int
    smallest: float
    bound: float  # the rounding it exceeds
    grad_norm: float  # its tangent gradient


@dataclass
class Stationarity:
    """The certificates over a scan's finished points."""

    points: int
    grad_norm_max: float | None
    grad_norm_median: float | None
    grad_norm_at: float | list[float] | None  # alpha of the largest
    second_order: bool  # the scan holds the curvature
    minima: int = 0  # points with no negative curvature found (smallest Ritz value >= -bound)
    saddles: list[Saddle] = field(default_factory=list)  # negative curvature at a stationary point
    unsettled: list[Saddle] = field(default_factory=list)  # negative curvature where the gradient is not small
    residual_max: float | None = None  # the largest Lanczos residual bound of those points' extreme Ritz values


@dataclass
class Sharpness:
    """The top eigenvalue and the trace along the norm axis (best restart per norm)."""

    norm: list[float]
    top: list[float]
    trace: list[float]
    trace_se: list[float]
    fastest_between: tuple[float, float] | None  # the neighbouring norms where lambda_max changes fastest
    fastest_rate: float | None
    rate_kind: str  # "d log lambda / d log w" or "d lambda / d w"


def _done(scan: dict) -> np.ndarray:
    return (np.asarray(scan["status"]) == Status.DONE) & np.isfinite(scan["train_loss"])


def _at(scan: dict, k: int, key: str):
    v = np.asarray(scan[key][k], dtype=float)
    return v.tolist() if v.ndim else float(v)


def bound(c: dict) -> np.ndarray:
    """``[K, R]``: how far below zero a smallest Ritz value may lie from rounding alone: ``ROUNDING`` of the
    operator's scale (its extreme Ritz values and the curvature term's factor, whose products round too)."""
    scale = np.maximum(np.abs(c["top"][..., 0]), np.abs(c["smallest"])) + np.abs(np.nan_to_num(c["multiplier"]))
    return ROUNDING * scale


def _radius(scan: dict) -> np.ndarray:
    """``[K, 1]``: each norm point's radius (on two spheres, of the product)."""
    w = np.asarray(scan["norm"], float)
    return (np.sqrt((w ** 2).sum(-1)) if w.ndim == 2 else w)[:, None]


def stationarity(scan: dict) -> Stationarity:
    """The first- and (where stored) second-order certificates of the scan's finished points."""
    done = _done(scan)
    g = np.where(done, scan["grad_norm"], np.nan)
    n = int(done.sum())
    if not n:
        return Stationarity(0, None, None, None, "curvature" in scan)
    k_max = int(np.unravel_index(np.nanargmax(g), g.shape)[0])
    out = Stationarity(n, float(np.nanmax(g)), float(np.nanmedian(g)), _at(scan, k_max, "alpha"), "curvature" in scan)
    if "curvature" in scan:
        c = scan["curvature"]
        low = done & np.isfinite(c["smallest"]) & (c["smallest"] < -bound(c))
        calm = done & np.isfinite(c["smallest"]) & ~low
        out.minima = int(calm.sum())
        out.residual_max = float(c["residual"][calm].max()) if out.minima else None
        still = scan["grad_norm"] <= STATIONARY * np.abs(c["smallest"]) * _radius(scan)
        for k, r in zip(*np.nonzero(low)):
            point = Saddle(_at(scan, k, "norm"), _at(scan, k, "alpha"), int(r), float(c["smallest"][k, r]),
                           float(bound(c)[k, r]), float(scan["grad_norm"][k, r]))
            (out.saddles if still[k, r] else out.unsettled).append(point)
    return out


def sharpness(scan: dict, best: np.ndarray) -> Sharpness | None:
    """The top eigenvalue and trace against the norm at the restarts ``best`` (per norm, -1: none), and where
    the top eigenvalue changes fastest; None without curvature or on a two-norm grid."""
    if "curvature" not in scan or "plane" in scan:
        return None
    c = scan["curvature"]
    ks = np.nonzero(best >= 0)[0]
    w = np.asarray(scan["norm"], float)[ks]
    pick = (ks, best[ks])
    top, trace, se = c["top"][pick][:, 0], c["trace"][pick], c["trace_se"][pick]
    ok = np.isfinite(top)
    w, top, trace, se = w[ok], top[ok], trace[ok], se[ok]
    between, rate, kind = None, None, "d log lambda / d log w"
    if len(w) >= 2:
        if (top > 0).all():
            rates = np.diff(np.log(top)) / np.diff(np.log(w))
        else:
            rates, kind = np.diff(top) / np.diff(w), "d lambda / d w"
        i = int(np.argmax(np.abs(rates)))
        between, rate = (float(w[i]), float(w[i + 1])), float(rates[i])
    return Sharpness(w.tolist(), top.tolist(), trace.tolist(), se.tolist(), between, rate, kind)


def density(values: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """The spectral density at ``grid`` from stochastic Lanczos quadrature: the Ritz ``values [..., m]`` with
    their ``weights [..., m]`` (``curvature/ritz_values``, ``ritz_weights``), each a Gaussian of width ``sigma``;
    ``[..., len(grid)]``, integrating to 1 over the real line (PyHessian's ``density``, from one probe)."""
    z = (np.asarray(grid, float)[..., None, :] - np.asarray(values, float)[..., None]) / sigma
    return (np.asarray(weights, float)[..., None] * np.exp(-0.5 * z ** 2)).sum(-2) / (sigma * np.sqrt(2 * np.pi))

"""``/scan/curvature``: the Riemannian Hessian at every point of a scan (``scan --curvature K``).

Every dataset is one entry of ``CURVATURE``, ``[K, R]`` or ``[K, R, axis]`` along one of ``CURVATURE_AXES``;
creating, writing, reading, merging, checking and labelling the group loop over it, and
``landscape.engine.curvature.Spectrum`` has a field of each name (``ChunkResult.curvature`` holds them in this
order).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np


@dataclass(frozen=True)
class CurvatureValue:
    """A ``/scan/curvature`` dataset: ``[K, R]``, or ``[K, R, axis]`` along one of ``CURVATURE_AXES``;
    ``required``: finite at every finished point (``verify``)."""

    axis: str | None
    description: str
    required: bool = False


RIEMANNIAN = "the Riemannian Hessian of the training loss at the minimizer (on its sphere's tangent space)"
CURVATURE = {
    "top": CurvatureValue("eigenvalue", f"the K largest eigenvalues of {RIEMANNIAN}, descending (Lanczos)", True),
    "smallest": CurvatureValue(None, f"the smallest Ritz value of {RIEMANNIAN} (Lanczos): the Hessian has an "
                                     "eigenvalue at or below it, so a negative value beyond rounding is negative "
                                     "curvature on the sphere", True),
    "residual": CurvatureValue(None, "the largest Lanczos residual bound of top and smallest (at least the "
                                     "rounding level): each lies within it of an eigenvalue"),
    "trace": CurvatureValue(None, f"the trace of {RIEMANNIAN}, by Hutchinson's estimator with Rademacher probes",
                            True),
    "trace_se": CurvatureValue(None, "the standard error of trace (NaN with one probe)"),
    "multiplier": CurvatureValue(None, "the curvature term's factor <grad f, theta_c> / w^2, the norm constraint's "
                                       "Lagrange multiplier (of two spheres, the larger in magnitude): the float32 "
                                       "rounding of the Hessian's products scales with it"),
    "ritz_values": CurvatureValue("ritz", "the Lanczos run's Ritz values, ascending: the nodes of a one-probe "
                                          "stochastic Lanczos quadrature of the Hessian's spectral density", True),
    "ritz_weights": CurvatureValue("ritz", "the weights of ritz_values (squared first components of the Ritz "
                                           "vectors; they sum to 1)"),
}
CURVATURE_AXES = {"eigenvalue": "rank of the eigenvalue, 1 = the largest", "ritz": "index of the Ritz value"}


def shapes(grid: tuple[int, ...], k: int, m: int) -> dict[str, tuple[int, ...]]:
    """Each dataset's shape for a scan's ``grid``, ``k`` eigenvalues and ``m`` Lanczos iterations."""
    sizes = {"eigenvalue": k, "ritz": m}
    return {name: (*grid, *((sizes[v.axis],) if v.axis else ())) for name, v in CURVATURE.items()}


def sizes_of(g: h5py.Group) -> tuple[int, int]:
    """``(k, m)`` of a scan group's curvature."""
    return g["curvature/eigenvalue"].shape[0], g["curvature/ritz"].shape[0]


def create_curvature(g: h5py.Group, grid: tuple[int, ...], k: int, m: int) -> None:
    """The scan group ``g``'s ``curvature`` group: its axes and every ``CURVATURE`` dataset, NaN until written."""
    c = g.create_group("curvature")
    c.attrs["description"] = (f"curvature at every minimizer: {RIEMANNIAN}, Hess f = P (grad^2 f) P - "
                              "(<grad f, theta_c> / w^2) P_c, by batched Lanczos and Hutchinson's estimator")
    c.create_dataset("eigenvalue", data=np.arange(1, k + 1, dtype=np.int64))
    c.create_dataset("ritz", data=np.arange(m, dtype=np.int64))
    for axis, what in CURVATURE_AXES.items():
        c[axis].attrs["long_name"] = what
    for name, shape in shapes(grid, k, m).items():
        c.create_dataset(name, shape=shape, dtype=np.float64, fillvalue=np.nan).attrs["description"] = \
            CURVATURE[name].description

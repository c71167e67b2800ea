"""Curvature on the sphere: the Riemannian Hessian of the training loss at every member, batched.

On the sphere ``||theta_c|| = w`` (``landscape.engine.sphere``) the second-order object is the Riemannian Hessian

    Hess f(theta)[u] = P (grad^2 f(theta) P u) - (<grad f(theta), theta_c> / w^2) P_c u,

``P`` the projection onto the tangent space and ``P_c u`` its constrained part (free coordinates keep their
Euclidean Hessian; a product of spheres has one curvature term per group). It maps the tangent space to itself,
and its quadratic form is the second derivative of ``f`` along the great circles through ``theta``: at a
constrained minimizer every eigenvalue is >= 0, and a negative one marks a saddle on the sphere.

:func:`measure` computes, for every member of ``theta: [M, P]`` at once (one batched Hessian-vector product per
iteration, ``Ensemble.hessian``):

* Lanczos (:func:`lanczos`, full reorthogonalization) from a random tangent vector: the top-k eigenvalues, the
  smallest, a residual bound ``|beta_m s_m|`` on each, and the Ritz values with their weights (the squared first
  components), a one-probe stochastic Lanczos quadrature of the spectral density;
* Hutchinson's estimator (:func:`hutchinson`) of the trace with Rademacher probes, and its standard error.

Random vectors come from each member's own seed, so a point's numbers do not depend on the chunk it is in.
``sphere=False`` gives the Euclidean Hessian (free training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import sphere as sphere_mod

Operator = Callable[[torch.Tensor], torch.Tensor]  # [M, S, P] -> [M, S, P]


@dataclass
class Spectrum:
    """What :func:`measure` returns, every array ``[M, ...]`` on the CPU in float64."""

    top: np.ndarray  # [M, k] the largest eigenvalues, descending
    smallest: np.ndarray  # [M]
    residual: np.ndarray  # [M] the largest Lanczos residual bound of the values above
    trace: np.ndarray  # [M]
    trace_se: np.ndarray  # [M] its standard error (NaN from one sample)
    ritz_values: np.ndarray  # [M, m] ascending
    ritz_weights: np.ndarray  # [M, m] summing to 1
    multiplier: np.ndarray  # [M] the curvature term's factor <grad, theta_c> / w^2 (0 off the sphere)


def dimension(layout, on_sphere: bool = True) -> int:
    """The dimension of the space the Hessian acts on: the parameters less one per sphere."""
    return layout.size - (layout.n_groups if on_sphere else 0)


def default_steps(k: int, dim: int) -> int:
    """Lanczos iterations when none are given: max(30, 3k), at most the dimension."""
    return min(dim, max(30, 3 * k))


def _factor(theta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``[M, P]``: the curvature term's factor ``<grad, theta_g> / ||theta_g||^2`` (``sphere.radial``) on the
    coordinates of each member's sphere g, 0 on the free ones."""
    c = sphere_mod.radial(theta, grad, mask)
    if mask is not None and mask.dim() == 2:
        return c @ mask
    return c[:, None] * (torch.ones_like(theta) if mask is None else mask.expand_as(theta))


def riemannian(hvp: Operator, theta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> Operator:
    """The Riemannian Hessian at ``theta`` as an operator on ``[M, S, P]``, from the Euclidean ``hvp`` and the
    gradient ``grad [M, P]``."""
    at, c = theta[:, None], _factor(theta, grad, mask)[:, None]

    def op(v: torch.Tensor) -> torch.Tensor:
        u = sphere_mod.tangent(at, v, mask)
        return sphere_mod.tangent(at, hvp(u), mask) - c * u
    return op


def lanczos(op: Operator, start: torch.Tensor, steps: int, fresh: Callable[[int], torch.Tensor]):
    """``steps`` Lanczos iterations of ``op`` from ``start [M, P]`` for every member at once, with full
    reorthogonalization; ``(alpha [M, m], beta [M, m], dropped [M, m])`` of the tridiagonal matrix, ``beta[:, -1]``
    the norm of the last residual. Where a member's Krylov space closes (a residual at rounding level: an invariant
    subspace), it goes on from a fresh vector (``fresh(j)``, member j's, in the operator's space) with a zero
    coupling, and the residual it dropped is kept in ``dropped`` (the Ritz values' error bounds count it)."""
    M, P = start.shape
    Q = start.new_zeros(M, steps, P)
    Q[:, 0] = start / torch.linalg.vector_norm(start, dim=-1, keepdim=True)
    alpha, beta, dropped = start.new_zeros(M, steps), start.new_zeros(M, steps), start.new_zeros(M, steps)
    tiny = 100 * torch.finfo(start.dtype).eps

    def orthogonalize(w, j):
        for _ in range(2):  # twice is enough (Kahan, Parlett)
            w = w - torch.einsum("mjp,mj->mp", Q[:, :j + 1], torch.einsum("mjp,mp->mj", Q[:, :j + 1], w))
        return w

    for j in range(steps):
        w = op(Q[:, j:j + 1])[:, 0]
        alpha[:, j] = torch.linalg.vecdot(w, Q[:, j])
        w = orthogonalize(w, j)
        beta[:, j] = torch.linalg.vector_norm(w, dim=-1)
        if j + 1 == steps:
            break
        scale = alpha[:, :j + 1].abs().amax(-1) + beta[:, :j + 1].amax(-1)
        for i in torch.nonzero(beta[:, j] <= tiny * scale).flatten().tolist():
            v, B = fresh(i).to(w), Q[i, :j + 1]
            for _ in range(2):
                v = v - B.T @ (B @ v)
            w[i] = v
            dropped[i, j], beta[i, j] = beta[i, j], 0.0
        Q[:, j + 1] = w / torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    return alpha, beta, dropped


def ritz(alpha: torch.Tensor, beta: torch.Tensor, dropped: torch.Tensor | None = None):
    """``(values [M, m] ascending, first components [M, m], residual bounds [M, m])`` of the tridiagonal
    ``(alpha, beta)``, in float64: ``|beta_m s_m|``, plus ``sum_j dropped_j |s_j|`` where a closed Krylov space's
    rounding-level residual was dropped."""
    a, b = alpha.double().cpu(), beta.double().cpu()
    T = torch.diag_embed(a) + torch.diag_embed(b[:, :-1], 1) + torch.diag_embed(b[:, :-1], -1)
    values, vectors = torch.linalg.eigh(T)
    resid = (b[:, -1:] * vectors[:, -1]).abs()
    if dropped is not None:
        resid = resid + torch.einsum("mj,mji->mi", dropped.double().cpu(), vectors.abs())
    return values, vectors[:, 0], resid


def hutchinson(op: Operator, probes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(trace [M], standard error [M])`` from the probes ``[M, S, P]`` (Rademacher), one batched product per
    probe (all S in one call measured slower: S times the backward pass's memory); the standard error is NaN for
    one probe."""
    samples = torch.stack([torch.linalg.vecdot(z, op(z[:, None])[:, 0]) for z in probes.unbind(1)], 1).double()
    S = samples.shape[1]
    se = samples.std(1) / S ** 0.5 if S > 1 else torch.full_like(samples[:, 0], float("nan"))
    return samples.mean(1), se


def rademacher(seed: int, rows: int, size: int) -> torch.Tensor:
    """``[rows, size]`` random signs from ``seed`` alone."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, 2, (rows, size), generator=g).float().mul_(2).sub_(1)


def multiplier(theta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``[M]``: the curvature term's factor ``<grad, theta_c> / w^2`` (the norm constraint's Lagrange multiplier;
    of two spheres, the larger in magnitude)."""
    c = sphere_mod.radial(theta, grad, mask)
    return c.gather(1, c.abs().argmax(1, keepdim=True))[:, 0] if c.dim() == 2 else c


SYMMETRY = 1e-3  # the largest relative asymmetry of a true Hessian's products (float32 rounding: ~1e-7)


def check_symmetric(ensemble, theta: torch.Tensor, x, y: torch.Tensor) -> None:
    """``ValueError`` (one line) where the Hessian-vector products of ``ensemble``'s loss at ``theta [1, P]`` on
    ``x``, ``y`` are not symmetric: ``|u.Hv - v.Hu| / (|u| |Hv| + |v| |Hu|)`` above ``SYMMETRY`` for two fixed
    random vectors, as where autograd drops part of the second derivative (an ``autograd.Function`` marked
    ``once_differentiable`` passes its backward's output on as a constant): its spectrum would be silently wrong."""
    z = torch.randn(1, 2, theta.shape[-1], generator=torch.Generator().manual_seed(0)).to(theta)
    hz = ensemble.hessian(theta, x, y)(z)[0]
    a, b = torch.dot(z[0, 0], hz[1]), torch.dot(z[0, 1], hz[0])
    gap = float((a - b).abs() / (z[0, 0].norm() * hz[1].norm() + z[0, 1].norm() * hz[0].norm()))
    if not gap <= SYMMETRY:
        raise ValueError(f"the model's Hessian-vector products are not symmetric (relative asymmetry {gap:.2g} on its "
                         "first training examples): autograd cannot differentiate its loss twice (an "
                         "autograd.Function marked once_differentiable?), so its curvature would be wrong")


def measure(hessian: Callable[[torch.Tensor], Operator], theta: torch.Tensor,
            grad: torch.Tensor | None, mask: torch.Tensor | None, seeds: list[int], k: int, samples: int, steps: int,
            on_sphere: bool = True) -> Spectrum:
    """The Hessian's top-``k`` eigenvalues, smallest eigenvalue, trace (``samples`` probes) and Ritz spectrum
    (``steps`` Lanczos iterations) at every member of ``theta [M, P]``: Riemannian on the sphere of ``mask``
    (``on_sphere``, with the gradient ``grad [M, P]``), else Euclidean (``grad`` unused). ``hessian(theta)``: the
    training loss's Hessian at those members as an operator on ``[M, S, P]`` (``Ensemble.hessian``); ``seeds`` one
    per member. A member whose parameters, gradient or products are not finite gets NaN (the others are computed
    as if it were not there)."""
    M, P = theta.shape
    nan = np.full(M, np.nan)
    out = Spectrum(np.full((M, k), np.nan), nan.copy(), nan.copy(), nan.copy(), nan.copy(),
                   np.full((M, steps), np.nan), np.full((M, steps), np.nan), nan.copy())
    ok = torch.isfinite(theta).all(-1)
    if on_sphere:
        ok &= torch.isfinite(grad).all(-1)
    rows = torch.nonzero(ok).flatten()
    if not len(rows):
        return out
    theta, seeds = theta[rows], [seeds[j] for j in rows.tolist()]
    grad = grad[rows] if on_sphere else None
    draws = [rademacher(s, samples + 1, P) for s in seeds]  # row 0 starts Lanczos, the rest are probes
    base = hessian(theta)
    op = riemannian(base, theta, grad, mask) if on_sphere else base
    start = torch.stack([d[0] for d in draws]).to(theta)
    if on_sphere:
        start = sphere_mod.tangent(theta, start, mask)
    gens = [torch.Generator().manual_seed(int(s) ^ 0x5EED) for s in seeds]

    def fresh(i: int) -> torch.Tensor:
        v = torch.randn(P, generator=gens[i]).to(theta)
        return sphere_mod.tangent(theta[i:i + 1], v[None], mask)[0] if on_sphere else v

    tri = lanczos(op, start, steps, fresh)
    good = torch.stack([t.isfinite().all(-1) for t in tri]).all(0).cpu()  # products that overflowed: NaN
    trace, se = hutchinson(op, torch.stack([d[1:] for d in draws]).to(theta))
    at = rows[good].numpy()
    if len(at):
        values, first, resid = ritz(*(t[good.to(t.device)] for t in tri))
        floor = torch.finfo(theta.dtype).eps * values.abs().amax(1, keepdim=True) * steps ** 0.5  # rounding
        resid = torch.maximum(resid, floor)
        out.top[at] = values[:, -k:].flip(-1).numpy()
        out.smallest[at] = values[:, 0].numpy()
        out.residual[at] = torch.cat([resid[:, -k:], resid[:, :1]], 1).amax(1).numpy()
        out.ritz_values[at], out.ritz_weights[at] = values.numpy(), first.square().numpy()
        out.trace[at], out.trace_se[at] = trace.cpu().numpy()[good.numpy()], se.cpu().numpy()[good.numpy()]
        out.multiplier[at] = (multiplier(theta, grad, mask).double().cpu().numpy()[good.numpy()] if on_sphere
                              else 0.0)
    return out

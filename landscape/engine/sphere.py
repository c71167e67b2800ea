"""The sphere constraint ``||theta_c||_2 = w``: tangent projection and retraction.

Parameters are handled as flat tensors of shape ``[M, P]``: ``M`` ensemble
members, each a vector of ``P`` parameters. ``mask`` (``[P]``, 0 or 1) selects
the constrained coordinates; the rest are free and pass through untouched.
``mask=None`` constrains every coordinate (the common case, and a few passes
over the parameters cheaper). ``target`` (``[M]``) is each member's norm.

A *product of spheres* (two parameter groups, each held at its own norm) is a
mask ``[G, P]`` with one disjoint 0/1 row per group and a target ``[M, G]``:
each group is projected and rescaled on its own sphere, and the norm is
``[M, G]``. All functions are pure and batched; they belong at the end of an
optimizer step (see ``landscape.engine.optim``).
"""

from __future__ import annotations

import torch


def _constrained(theta: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return theta if mask is None else theta * mask


def _grouped(mask: torch.Tensor | None) -> bool:
    return mask is not None and mask.dim() == 2


def free(mask: torch.Tensor) -> torch.Tensor:
    """``[P]``: 1 on the coordinates no sphere holds (for a ``[P]`` or a group ``[G, P]`` mask)."""
    return 1 - (mask.sum(0) if _grouped(mask) else mask)


def constrained_norm(theta: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member L2 norm of the constrained coordinates: ``[M, P] -> [M]`` (``[M, G]`` for a group mask)."""
    if _grouped(mask):
        return (theta.square() @ mask.T).sqrt()
    return torch.linalg.vector_norm(_constrained(theta, mask), dim=-1)


def radial(theta: torch.Tensor, vec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The coefficient of ``vec`` along the constrained part of ``theta``, ``<vec, theta_c> / ||theta_c||^2``:
    ``[M]``, or ``[M, G]`` (one per group) for a group mask; leading axes broadcast."""
    if _grouped(mask):
        return ((vec * theta) @ mask.T) / (theta.square() @ mask.T)
    tc = _constrained(theta, mask)
    return torch.linalg.vecdot(vec, tc) / torch.linalg.vector_norm(tc, dim=-1).square()


def tangent(theta: torch.Tensor, vec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Project ``vec`` onto the tangent space of the sphere at ``theta``.

    Removes from the constrained part of ``vec`` its component along the
    constrained part of ``theta`` (per group for a group mask, :func:`radial`); free
    coordinates are left as they are. The result has zero inner product with
    ``theta * mask`` (with each group's part of ``theta``).
    """
    if _grouped(mask):
        return torch.addcmul(vec, radial(theta, vec, mask) @ mask, theta, value=-1)
    tc = _constrained(theta, mask)
    return torch.addcmul(vec, radial(tc, vec).unsqueeze(-1), tc, value=-1)


def retract(theta: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Map ``theta`` back onto the sphere: rescale its constrained part (each group's) to norm ``target``."""
    if _grouped(mask):
        scale = (target / constrained_norm(theta, mask)) @ mask + free(mask)  # free coordinates: 1
        return theta * scale
    scale = (target / constrained_norm(theta, mask)).unsqueeze(-1)
    if mask is None:
        return theta * scale
    return torch.where(mask > 0, theta * scale, theta)

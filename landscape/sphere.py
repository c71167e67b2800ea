"""The sphere constraint ``||theta_c||_2 = w``: tangent projection and retraction.

Parameters are handled as flat tensors of shape ``[M, P]``: ``M`` ensemble
members, each a vector of ``P`` parameters. ``mask`` (``[P]``, 0 or 1) selects
the constrained coordinates; the rest are free and pass through untouched.
``mask=None`` constrains every coordinate (the common case, and a few passes
over the parameters cheaper). ``target`` (``[M]``) is each member's norm. All
functions are pure and batched; they belong at the end of an optimizer step
(see ``landscape.optim``).
"""

from __future__ import annotations

import torch


def _constrained(theta: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return theta if mask is None else theta * mask


def constrained_norm(theta: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member L2 norm of the constrained coordinates: ``[M, P] -> [M]``."""
    return torch.linalg.vector_norm(_constrained(theta, mask), dim=-1)


def tangent(theta: torch.Tensor, vec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Project ``vec`` onto the tangent space of the sphere at ``theta``.

    Removes from the constrained part of ``vec`` its component along the
    constrained part of ``theta``; free coordinates are left as they are.
    The result has zero inner product with ``theta * mask``.
    """
    tc = _constrained(theta, mask)
    radial = torch.linalg.vecdot(vec, tc) / torch.linalg.vector_norm(tc, dim=-1).square()
    return torch.addcmul(vec, radial.unsqueeze(-1), tc, value=-1)


def retract(theta: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Map ``theta`` back onto the sphere: rescale its constrained part to norm ``target``."""
    scale = (target / constrained_norm(theta, mask)).unsqueeze(-1)
    if mask is None:
        return theta * scale
    return torch.where(mask > 0, theta * scale, theta)

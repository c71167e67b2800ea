"""Weight norms: of all trainable parameters, and of the constrained set (the scan's norm axis)."""

from __future__ import annotations

import torch

from ..engine import sphere
from . import metric


@metric("norm", "L2 norm of all trainable parameters", "L2 norm", always=True)
def norm(ctx):
    return torch.linalg.vector_norm(ctx.theta, dim=-1)


@metric("constrained_norm", "L2 norm of the constrained parameter set (the scan's norm axis)", "L2 norm",
        always=True)
def constrained_norm(ctx):
    return sphere.constrained_norm(ctx.theta, ctx.mask)

"""The norm of each top-level parameter group: which part of the model weight decay shrinks, and when.

A group is the first component of a parameter's name: ``0``, ``2``, ``4`` for
the layers of an ``nn.Sequential`` MLP, ``embed`` and ``mlp`` for the modular
task's model. Series ``group_norm/<group>``.
"""

from __future__ import annotations

import torch

from . import metric


def groups(layout) -> dict[str, list[tuple[int, int]]]:
    """``{group: [(start, stop) spans in the flat parameter vector]}``, in layout order."""
    out: dict[str, list[tuple[int, int]]] = {}
    start = 0
    for name, n in zip(layout.names, layout.numels):
        out.setdefault(name.split(".", 1)[0], []).append((start, start + n))
        start += n
    return out


@metric("group_norm", "L2 norm of one top-level parameter group: module {key} (parameters {key}.*)", "L2 norm",
        keys=lambda layout: list(groups(layout)))
def group_norm(ctx):
    return {g: torch.stack([ctx.theta[:, a:b].square().sum(-1) for a, b in spans]).sum(0).sqrt()
            for g, spans in groups(ctx.layout).items()}

"""One forward pass of every member on a split, shared by the metrics that read outputs or activations.

:func:`forward` runs the model for all members at once (``vmap`` over ``functional_call``) and, with a forward
pre-hook on the probe layer, returns the input of that layer too. A :class:`~landscape.metrics.Context` calls it
once per split (``Context.forward``): the losses and accuracies (for models on the ``vmap`` engine), the probe
and the progress measures all read the same pass.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap


def probe_layer(module: torch.nn.Module, structure: dict) -> str | None:
    """The name of the layer whose input is probed: ``structure["probe_layer"]`` when the task names one, else
    the model's last ``nn.Linear``; None when it has none."""
    if "probe_layer" in structure:
        return structure["probe_layer"]
    linear = [name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    return linear[-1] if linear else None


def forward(module, layout, theta: torch.Tensor, x: torch.Tensor, layer: str | None = None):
    """``(outputs [M, N, ...], input of layer [M, N, h] or None)`` for every member ``theta: [M, P]``."""
    modules = dict(module.named_modules())
    target = modules.get(layer) if layer is not None else None

    def one(flat, x):
        seen = []
        hook = None if target is None else target.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
        try:
            out = functional_call(module, layout.unflatten(flat), (x,))
        finally:
            if hook is not None:
                hook.remove()
        return out, (seen[0].reshape(x.shape[0], -1) if seen else torch.zeros(x.shape[0], 0, device=x.device))

    out, hidden = vmap(one, in_dims=(0, None))(theta, x)
    return out, (hidden if target is not None else None)

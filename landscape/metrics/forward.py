"""One forward pass of every member on a split, shared by the metrics that read outputs or activations.

``Context.forward(split)`` runs the model for all members at once (``Ensemble.forward``: the hand-batched
MLP, or ``vmap`` over ``functional_call`` with a forward pre-hook) and returns the input of the probe layer
(:func:`probe_layer`) with the outputs. It runs once per split and context: the losses and accuracies, the
probe and the progress measures all read the same pass.
"""

from __future__ import annotations

import torch


def probe_layer(module: torch.nn.Module, structure: dict) -> str | None:
    """The name of the layer whose input is probed: ``structure["probe_layer"]`` when the task names one, else
    the model's last ``nn.Linear``; None when it has none."""
    if "probe_layer" in structure:
        return structure["probe_layer"]
    linear = [name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    return linear[-1] if linear else None

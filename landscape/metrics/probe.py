"""Linear representability: how well a ridge-regression probe on the last hidden representation predicts the target.

The representation is the input of the model's probe layer: ``task.structure["probe_layer"]`` when the task
names one (the transformer's ``unembed``), else the last ``nn.Linear`` of the model. It is read for every member
at once (``vmap`` over ``functional_call`` with a forward pre-hook on that layer), a ridge probe is fitted on the
training inputs to the target (one-hot for integer labels) with one batched solve, and its R² is reported on the
test inputs. Exact formula: ``docs/metrics.md``.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from . import metric

RIDGE = 1e-3  # the ridge penalty, relative to the mean diagonal of the Gram matrix


def probe_layer(module: torch.nn.Module, structure: dict) -> str | None:
    """The name of the layer whose input is probed, or None when the model has no ``nn.Linear``."""
    if "probe_layer" in structure:
        return structure["probe_layer"]
    linear = [name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    return linear[-1] if linear else None


def representation(module, layer: str, layout, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The input of ``layer`` for every member: ``[M, N, h]`` (flattened past the sample axis)."""
    target = dict(module.named_modules())[layer]

    def one(flat, x):
        seen = []
        hook = target.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
        try:
            functional_call(module, layout.unflatten(flat), (x,))
        finally:
            hook.remove()
        return seen[0].reshape(x.shape[0], -1)

    return vmap(one, in_dims=(0, None))(theta, x)


def ridge_r2(h_train: torch.Tensor, y_train: torch.Tensor, h_test: torch.Tensor, y_test: torch.Tensor,
             ridge: float = RIDGE) -> torch.Tensor:
    """Test R² of a ridge probe (with intercept) fitted per member: ``h: [M, N, h]``, ``y: [N, c]`` -> ``[M]``."""
    def design(h):
        return torch.cat([h, torch.ones_like(h[..., :1])], -1)

    A = design(h_train.double())
    gram = A.transpose(-1, -2) @ A
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    W = torch.linalg.solve(gram + ridge * scale[:, None, None] * eye, A.transpose(-1, -2) @ y_train.double())
    pred = design(h_test.double()) @ W
    y = y_test.double()
    residual = (y - pred).square().sum((-1, -2))
    total = (y - y.mean(0)).square().sum().clamp_min(1e-300)
    return 1 - residual / total


def _targets(task, y: torch.Tensor) -> torch.Tensor:
    if y.dtype in (torch.int64, torch.int32):  # integer labels: one-hot over every class seen
        classes = int(max(task.y_train.max(), task.y_test.max())) + 1
        return torch.nn.functional.one_hot(y, classes).double()
    return y.reshape(len(y), -1).double()


def _applies(task) -> str | None:
    with torch.random.fork_rng(devices=[]):
        module = task.model()
    layer = probe_layer(module, task.structure)
    if layer is None:
        return "a model with an nn.Linear layer, or a task that names its probe layer (structure['probe_layer'])"
    if layer not in dict(module.named_modules()):
        return f"the probe layer {layer!r} to exist in the model"
    return None


@metric("probe_r2", "test R² of a ridge-regression probe on the input of the last linear layer (the last hidden "
        "representation), fitted on the training set", "R²", applies=_applies,
        tasks="any model with an nn.Linear")
def probe_r2(ctx):
    worker = ctx.worker
    module = worker.ensemble.module
    layer = probe_layer(module, ctx.task.structure)
    (x_tr, y_tr), (x_te, y_te) = worker.data["train"], worker.data["test"]
    with torch.no_grad():
        h_tr = representation(module, layer, ctx.layout, ctx.theta, x_tr)
        h_te = representation(module, layer, ctx.layout, ctx.theta, x_te)
    return ridge_r2(h_tr, _targets(ctx.task, y_tr), h_te, _targets(ctx.task, y_te)).to(ctx.theta.dtype)

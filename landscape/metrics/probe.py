"""Linear representability: how well a ridge-regression probe on the last hidden representation predicts the target.

The representation is what the task's ``structure`` names (``probe_layer``, its input or output, mapped by
``probe_map``: ``landscape.tasks.contract``; the transformer's ``unembed`` input), else the input of the last
``nn.Linear`` of the model. It is read for every member
at once, in the forward pass the metrics share (``Context.forward``), a ridge probe is fitted on the
training inputs to the target (one-hot for integer labels) with one batched solve, and its R² is reported on the
test inputs. Exact formula: ``docs/metrics.md``.
"""

from __future__ import annotations

import torch

from . import metric

RIDGE = 1e-3  # the ridge penalty, relative to the mean diagonal of the Gram matrix


def ridge_r2(h_train: torch.Tensor, y_train: torch.Tensor, h_test: torch.Tensor, y_test: torch.Tensor,
             ridge: float = RIDGE) -> torch.Tensor:
    """Test R² of a ridge probe (with intercept) fitted per member: ``h: [M, N, h]``, ``y: [N, c]`` -> ``[M]``.

    In float64 (Cholesky solve: the ridge makes the normal equations positive definite). Batched products round
    differently for different numbers of members; in float64 that stays below what the stored float32 R² resolves,
    so a member's value does not depend on which others share its ensemble. NaN for a member whose
    representation is not finite (a diverged run)."""
    def design(h):
        return torch.cat([h, torch.ones_like(h[..., :1])], -1)

    A = design(h_train.double())
    gram = A.transpose(-1, -2) @ A
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    L, info = torch.linalg.cholesky_ex(gram + ridge * scale[:, None, None] * eye)  # info > 0: not finite
    W = torch.cholesky_solve(A.transpose(-1, -2) @ y_train.double(), torch.where(info[:, None, None] == 0, L, eye))
    y = y_test.double()
    residual = (y - design(h_test.double()) @ W).square().sum((-1, -2))
    total = (y - y.mean(0)).square().sum().clamp_min(1e-300)
    return torch.where(info == 0, 1 - residual / total, torch.nan)


def _targets(task, y: torch.Tensor) -> torch.Tensor:
    if y.dtype in (torch.int64, torch.int32):  # integer labels: one-hot over every class seen
        classes = int(max(task.y_train.max(), task.y_test.max())) + 1
        return torch.nn.functional.one_hot(y, classes).double()
    return y.reshape(len(y), -1).double()


def _applies(task) -> str | None:
    from ..tasks import contract

    found = contract.sample(task)
    probe = contract.probe_of(found.module, task.structure)
    if probe is None:
        return "a model with an nn.Linear layer, or a task that names the module to probe (structure['probe_layer'])"
    if "probe_layer" not in task.structure and "probe_map" not in task.structure:  # declared ones are checked
        try:
            contract.representation(task, found, probe)
        except ValueError as e:
            return f"a representation with one row per example: {e}"
    return None


@metric("probe_r2", "test R² of a ridge-regression probe on the representation the task names "
        "(structure['probe_layer'], its input or output), else the input of the last linear layer (the last "
        "hidden representation), fitted on the training set", "R²", applies=_applies,
        tasks="any model with an nn.Linear, or a named module", probe=True)
def probe_r2(ctx):
    (_, y_tr), (_, y_te) = ctx.worker.data["train"], ctx.worker.data["test"]
    h_tr, h_te = ctx.forward("train")[1], ctx.forward("test")[1]
    with torch.no_grad():
        return ridge_r2(h_tr, _targets(ctx.task, y_tr), h_te, _targets(ctx.task, y_te)).to(ctx.theta.dtype)

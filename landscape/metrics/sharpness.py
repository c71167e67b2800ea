"""Sharpness along a trajectory: the training loss's Hessian at each logged step, as the scan measures it.

The same batched Lanczos and Hutchinson estimator as ``landscape scan --curvature`` (``landscape.engine.curvature``),
on every member at once: the Euclidean Hessian of free training, the Riemannian Hessian of the sphere a
``--fix-norm`` run is held on. Each member on the examples it trains on; its random vectors from its seed and the
step, so a run's numbers do not depend on the sweep around it. Not logged unless asked for (``--metrics
sharpness``): each logged step costs ``STEPS + SAMPLES`` Hessian-vector products on the full training set.
"""

from __future__ import annotations

import torch

from ..engine import curvature
from ..engine.worker import derived_seed
from . import metric

STEPS = 20  # Lanczos iterations (at most the dimension)
SAMPLES = 10  # Hutchinson probes
WORDS = {"top": "largest eigenvalue (Lanczos)", "smallest": "smallest Ritz value (Lanczos; negative: not a minimum)",
         "residual": "Lanczos residual bound of top and smallest", "trace": "trace (Hutchinson's estimate)",
         "trace_se": "standard error of the trace estimate"}
KEYS = tuple(WORDS)


@metric("sharpness", "the training loss's Hessian (Riemannian on the sphere with --fix-norm): {key}",
        keys=lambda layout: list(KEYS), default=False, words=WORDS)
def sharpness(ctx):
    worker, theta = ctx.worker, ctx.theta
    x, y = worker.data["train"]
    dim = curvature.dimension(ctx.layout, ctx.on_sphere)
    seeds = [derived_seed(s, 5, ctx.step) for s in (ctx.seeds or range(len(theta)))]
    grad = worker.grad(theta)[0] if ctx.on_sphere else None
    s = curvature.measure(lambda t: worker.ensemble.hessian(t, x, y, worker.keep), theta, grad, worker.mask,
                          seeds, 1, SAMPLES, min(STEPS, dim), on_sphere=ctx.on_sphere)
    values = {"top": s.top[:, 0], "smallest": s.smallest, "residual": s.residual, "trace": s.trace,
              "trace_se": s.trace_se}
    lost = ~torch.isfinite(ctx.evaluate("train")[0]).cpu()  # a loss that is not finite has no Hessian to report
    return {k: torch.as_tensor(values[k]).masked_fill(lost, float("nan")) for k in KEYS}

"""A whole training step, the ensemble's gradient and the optimizer step, compiled as one function.

On a CPU, a small ensemble's step is mostly per-operation cost: at 4 members of the teacher-student MLP
(11,205 parameters) about 40 eager operations take 2.2 ms, of which the five batched matrix products are a
quarter. A continuation branch runs thousands of such steps one after the other
(``landscape.branches``), so there the per-operation cost is most of the scan. Compiled whole, the
hand-batched MLP's forward and backward pass, its loss gradient and the fused optimizer step
(``landscape.fused``) become a handful of C++ kernels around the MKL products, called from a C++ wrapper
(inductor's ``cpp_wrapper``), with no Python between them: 0.64-0.96 ms for that step, and 5.7-6.4 ms
instead of 8.9-9.6 ms at 34 members (``benchmarks/compile_step.py``).

Only the ``mlp`` engine's models are compiled whole (their gradient is written out in ``landscape.mlp``);
other engines get the gradient eagerly and the fused optimizer step. Compilation is once per step kind,
model and shape in a process, and a failure goes on eagerly with a note, as ``fused.Step`` does. The
eager path (``worker.grad`` and ``fused.Step``) stays the reference: ``tests/test_whole.py`` checks that
both agree.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from . import fused, optim
from .ensemble import runs_mlp
from .plain import one_line

OPTIONS = {"cpp_wrapper": True}  # inductor: the generated kernels called from C++, not from Python
# Compiled whole, a step of large products runs slower than eager (digits at 32 members, about 1e10 flop a
# step: 186-192 ms against 153-178 ms), so above this many gradient flop a step the gradient stays eager
# and only the optimizer step is compiled; teacher-student at 34 members is 2.3e8.
MAX_FLOP = 1e9


def pays(rows: int, params: int, members: int) -> bool:
    """Whether a step of ``members`` models of ``params`` parameters on ``rows`` examples is compiled whole:
    its gradient (about 6 rows params flop a member) is small enough for the per-operation cost to matter."""
    return 6.0 * rows * params * members <= MAX_FLOP


def planned(plan, members: int) -> bool:
    """Whether a scan's or a sweep's steps of ``members`` members are compiled whole under ``--compile``: an
    mlp-engine model (``ensemble.runs_mlp``) and a small step (:func:`pays`)."""
    cfg = plan.config
    rows = cfg.batch_size or len(plan.task.x_train)
    return runs_mlp(plan.module, plan.layout, cfg.engine) and pays(rows, plan.layout.size, members)


class WholeStep:
    """``(theta, state, idx, lr, target=None, mask=None, weight_decay=None) -> (theta, state, loss)``: the
    gradient of ``worker``'s training loss at ``theta`` (full batch, or each member's minibatch ``idx``)
    followed by ``step``; compiled as one function when ``step.compiled``, the model runs on the mlp
    engine and the step is small (:func:`pays`), else the two calls."""

    def __init__(self, step: fused.Step, worker):
        self.step, self.worker = step, worker
        chain = worker.ensemble.chain
        self.fn = _compiled(step.kind, chain, step.betas) if step.compiled and chain is not None else None

    @property
    def whole(self) -> bool:
        """True while the step runs compiled whole."""
        return self.fn is not None

    def __call__(self, theta, state: optim.AdamState, idx, lr, target=None, mask=None, weight_decay=None):
        x, y = self.worker.data["train"]
        if self.fn is None or not pays(len(x) if idx is None else idx.shape[-1], theta.shape[1], theta.shape[0]):
            grad, loss = self.worker.grad(theta, idx)
            theta, state = self.step(theta, grad, state, lr, target, mask, weight_decay)
            return theta, state, loss
        t = state.t + 1
        scalars, wd = fused.tensors(theta, lr, t, self.step.betas, weight_decay)
        key = (id(self.fn), tuple(theta.shape), None if idx is None else tuple(idx.shape))
        new = key not in _SEEN
        start = time.perf_counter()
        try:
            theta, m, v, loss = self.fn(theta, state.m, state.v, *scalars, target, mask, wd, x, y, idx,
                                        self.worker.keep)
        except Exception as e:  # noqa: BLE001 -- a compiler failure on this shape: the two eager calls compute it
            if not new:
                raise
            self.fn = None
            self._note(f"compiling the whole {fused.LABELS[self.step.kind]} step failed ({one_line(e)[:160]}); "
                       "going on with the gradient and the optimizer step apart")
            return self(theta, state, idx, lr, target, mask, weight_decay)
        if new:
            _SEEN.add(key)
            self._note(f"compiled the whole {fused.LABELS[self.step.kind]} step (gradient and update) for "
                       f"{list(theta.shape)} in {time.perf_counter() - start:.1f} s (once per shape; "
                       "--compile off to skip)")
        return theta, optim.AdamState(m, v, t), loss

    def _note(self, text: str) -> None:
        if self.step.on_note is not None:
            self.step.on_note(text)


_CACHE: dict = {}  # the compiled functions, by step kind, model and betas
_SEEN: set = set()  # (function, shapes) compiled so far: each noted once


def _compiled(kind: str, chain, betas) -> Callable:
    """One compiled function per step kind, model (layers, parameter layout, loss) and betas in a process.

    Keyed by value, so the workers a scan builds norm after norm share one function and its compiled code
    (a new closure would be a new guard on the same code object, and recompile)."""
    key = (kind, chain.layers, tuple(chain.layout.names), tuple(chain.layout.shapes), chain.loss, tuple(betas))
    if key not in _CACHE:
        _CACHE[key] = torch.compile(_function(kind, chain, *betas), fullgraph=True, dynamic=False,
                                    options=OPTIONS)
    return _CACHE[key]


def _function(kind: str, chain, b1: float, b2: float) -> Callable:
    kernel = fused.KERNELS[kind]

    def whole(theta, m, v, lr, k1, k2, target, mask, wd, x, y, idx, keep):
        if idx is None:
            grad, loss = chain.grad(theta, x, y, keep=keep)
        else:
            grad, loss = chain.grad(theta, x[idx], y[idx], shared=False)
        if kind == "adamw":
            theta, m, v = kernel(theta, grad, m, v, lr, k1, k2, wd, b1, b2)
        else:
            theta, m, v = kernel(theta, grad, m, v, lr, k1, k2, target, mask, wd, b1, b2)
        return theta, m, v, loss

    return whole

"""A whole training step, the ensemble's gradient and the optimizer step, compiled as one function.

On a CPU, a small ensemble's step is mostly per-operation cost: at 4 members of the teacher-student MLP
(11,205 parameters) about 40 eager operations take 2.2 ms, of which the five batched matrix products are a
quarter. A continuation branch runs thousands of such steps one after the other
(``landscape.experiments.branches``), so there the per-operation cost is most of the scan. Compiled whole, the
hand-batched MLP's forward and backward pass, its loss gradient and the fused optimizer step
(``landscape.engine.fused``) become a handful of C++ kernels around the MKL products, called from a C++ wrapper
(inductor's ``cpp_wrapper``), with no Python between them: 0.64-0.96 ms for that step, and 5.7-6.4 ms
instead of 8.9-9.6 ms at 34 members (``benchmarks/compile_step.py``).

The ``vmap`` engine (any model: the transformer's path) is compiled whole too, its ``vmap(grad(...))`` traced
by dynamo. There it pays only on small steps: an 8-member transformer's step (gradient and AdamW) at p = 11
(0.33 GFLOP) took 5.5 ms compiled whole against 9.8 ms eager, and at p = 23, 31 and 41 (1.3-4.0 GFLOP) it
was slower than eager (16.1 against 15.5 ms, 25.9 against 23.0, 42.1 against 34.9;
``benchmarks/compile_step.py``), so both engines share the rule of :func:`pays`. The ``loop``
engine is never compiled. Compilation is once per step kind,
model and shape in a process, and a failure goes on eagerly with a note, as ``fused.Step`` does. The
eager path (``worker.grad`` and ``fused.Step``) stays the reference: ``tests/test_whole.py`` checks that
both agree.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from . import fused, optim
from .ensemble import engine_of
from ..errors import one_line
from ..tasks import inputs
from ..tasks.contract import adapted

OPTIONS = {"cpp_wrapper": True}  # inductor: the generated kernels called from C++, not from Python
# Compiled whole, a step of large products runs slower than eager (digits at 32 members, about 1e10 flop a
# step: 186-192 ms against 153-178 ms; the transformer on the vmap engine, 8 members, at p = 23, 1.3e9: 16.1
# against 15.5 ms), so above this many gradient flop a step the gradient stays eager and only the optimizer
# step is compiled; teacher-student at 34 members is 2.3e8, the transformer at p = 11, 8 members, 3.3e8.
MAX_FLOP = 1e9
COUNT_ROWS = 64  # training examples member_flop counts a model's gradient on


def pays(flop: float) -> bool:
    """Whether a step whose gradient takes ``flop`` (all members) is compiled whole: small enough for the
    per-operation cost to matter."""
    return flop <= MAX_FLOP


def member_flop(task, module, layout, engine: str, rows: int) -> float:
    """Matrix flop of one member's loss gradient on ``rows`` training examples: about 6 rows params for an MLP
    on the ``mlp`` engine (a product forward and two back per layer), else counted by torch's
    ``FlopCounterMode`` on the model's gradient on the first ``COUNT_ROWS`` training examples, per example
    (once per task and model in a process; work that does not grow with the examples, such as the
    transformer's attention table, makes it an overestimate for larger batches); 6 params per example where the
    counter fails on the model."""
    if engine == "mlp":
        return 6.0 * rows * layout.size
    key = (id(task), type(module), tuple(layout.names), tuple(layout.shapes))
    if key not in _FLOP:
        params = {n: p.detach() for n, p in module.named_parameters()}
        device = next(iter(params.values())).device  # a worker's model sits on its device
        x = inputs.to(inputs.take(task.x_train, slice(0, COUNT_ROWS)), device)
        y = task.y_train[:COUNT_ROWS].to(device)
        try:
            with FlopCounterMode(display=False) as counter:
                torch.func.grad(lambda ps: task.member_loss(adapted(task, functional_call(module, ps, (x,))),
                                                            y))(params)
            per_row = counter.get_total_flops() / len(y)
        except Exception:  # noqa: BLE001 -- the counter's module hooks fail on some models: count as an MLP
            per_row = 6.0 * layout.size
        _FLOP[key] = (per_row, task)  # the task kept: its id is in the key
    return rows * _FLOP[key][0]


def planned(plan, members: int) -> str | None:
    """The engine whose steps of ``members`` members a scan or a sweep compiles whole under ``--compile``
    (``mlp`` or ``vmap``), or None (the optimizer step alone): any engine but ``loop``, on a small step
    (:func:`pays`)."""
    cfg = plan.config
    engine = engine_of(plan.module, plan.layout, cfg.engine, plan.task)
    if engine == "loop":
        return None
    rows = min(cfg.batch_size or plan.task.n_train, plan.task.n_train)
    return engine if pays(members * member_flop(plan.task, plan.module, plan.layout, engine, rows)) else None


class WholeStep:
    """``(theta, state, idx, lr, target=None, mask=None, weight_decay=None) -> (theta, state, loss)``: the
    gradient of ``worker``'s training loss at ``theta`` (full batch, or each member's minibatch ``idx``)
    followed by ``step``; compiled as one function when ``step.compiled``, the model runs on the mlp or the
    vmap engine and the step is small (:func:`pays`), else the two calls."""

    def __init__(self, step: fused.Step, worker):
        self.step, self.worker = step, worker
        ens = worker.ensemble
        self.fn = _compiled(step.kind, worker, step.betas) if step.compiled and ens.batched is not None else None

    @functools.cached_property
    def per_row(self) -> float:
        """Gradient flop per member and training example (:func:`member_flop`)."""
        w = self.worker
        n = w.task.n_train
        return member_flop(w.task, w.ensemble.module, w.layout, w.ensemble.engine, n) / n

    @property
    def whole(self) -> bool:
        """True while the step runs compiled whole."""
        return self.fn is not None

    def __call__(self, theta, state: optim.AdamState, idx, lr, target=None, mask=None, weight_decay=None):
        x, y = self.worker.data["train"]
        if self.fn is None or not pays(theta.shape[0] * (len(x) if idx is None else idx.shape[-1]) * self.per_row):
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


_CACHE: dict = {}  # the compiled functions, by step kind, engine, model and betas
_SEEN: set = set()  # (function, shapes) compiled so far: each noted once
_FLOP: dict = {}  # member_flop's counts per training example, by task and model


def _compiled(kind: str, worker, betas) -> Callable:
    """One compiled function per step kind, model and betas in a process.

    Keyed by value, so the workers a scan builds norm after norm share one function and its compiled code
    (a new closure would be a new guard on the same code object, and recompile): on the mlp engine the layers,
    parameter layout and loss; on the vmap engine the task, the model's class and its layout, since every
    worker's model is a copy of the task's one model, whose parameters ``functional_call`` replaces."""
    ens, layout = worker.ensemble, worker.layout
    shape = (tuple(layout.names), tuple(layout.shapes), tuple(betas))
    if ens.engine == "mlp":
        key = (kind, "mlp", ens.chain.layers, ens.chain.loss, *shape)
    else:
        key = (kind, "vmap", id(worker.task), type(ens.module), *shape)
    if key not in _CACHE:  # the task kept with its function: its id is in the key
        fused.trust_cpu_flags()
        _CACHE[key] = (torch.compile(_function(kind, ens.batched, *betas), fullgraph=True, dynamic=False,
                                     options=OPTIONS), worker.task)
    return _CACHE[key][0]


def _function(kind: str, batched, b1: float, b2: float) -> Callable:
    kernel = fused.KERNELS[kind]

    def whole(theta, m, v, lr, k1, k2, target, mask, wd, x, y, idx, keep):
        if idx is None:
            grad, loss = batched.grad(theta, x, y, keep=keep)
        else:
            grad, loss = batched.grad(theta, x[idx], y[idx], shared=False)
        if kind == "adamw":
            theta, m, v = kernel(theta, grad, m, v, lr, k1, k2, wd, b1, b2)
        else:
            theta, m, v = kernel(theta, grad, m, v, lr, k1, k2, target, mask, wd, b1, b2)
        return theta, m, v, loss

    return whole

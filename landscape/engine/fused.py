"""Fused optimizer steps: ``landscape.engine.optim``'s steps compiled by ``torch.compile`` into a few passes.

Eager PyTorch runs every elementwise operation of a step as its own pass over
``[M, P]``: a Riemannian Adam step is about 25 of them (three tangent
projections, the moments, the direction, the retraction). ``torch.compile``
fuses them. Here each step is written once more as a function of tensors only:
everything that changes from step to step (the learning rate, both bias
corrections, folded into ``k1 = (1 - b1^t) / sqrt(1 - b2^t)`` and
``k2 = (1 - b1^t) eps``) is a 0-d tensor argument, so a warm-up or cosine
schedule never recompiles; betas are constants of a run. A run compiles once per
shape (a last, smaller chunk compiles once more, with the member count dynamic).
The eager functions in ``landscape.engine.optim`` stay the reference:
``tests/test_fused.py`` checks that both agree over 200 steps.

``--compile auto|on|off`` (``MODES``): ``auto`` compiles when nothing that
``torch.compile`` needs is missing here (a C++ compiler, triton on CUDA; the
trial compilation of :func:`unavailable`, about 3 s, is left to ``on``, and a
compilation that fails goes on eagerly with a note) and the time it is expected to save
(:func:`saving`) reaches ``AUTO_SAVING``: a first compilation in a process costs
1-7 s with inductor's on-disk cache warm and 25-35 s cold on the 2-core CPU. What a
step saves was measured there (``benchmarks/compile_step.py``): compiled whole with
its gradient (``landscape.engine.whole_step``, models on the mlp engine), about 1.3 ms per
step plus 5 ns per element (steps x members x parameters); on the vmap engine
(the transformer at p = 11, 8 members), about 1 ms per step, the rest the optimizer's; the optimizer step
alone, about 0.8 ns per element (0.50 ms eager against 0.22 ms fused on
[32, 11205], ``benchmarks/compile_step.py``). Per-step savings dominate where
many small steps run one after the other: the continuation branches.
"""

from __future__ import annotations

import functools
import math
import shutil
import sys
import time
from typing import Callable

import torch

from . import optim, sphere
from ..errors import one_line

MODES = {
    "auto": "compile the step when torch.compile works here and the run is long enough to repay it",
    "on": "always compile the step (refused where torch.compile cannot run)",
    "off": "the eager reference steps",
}
AUTO_SAVING = 20.0  # seconds: auto compiles when a run is expected to save at least this much
# (s per step, s per element-step) saved: the step compiled whole (landscape.engine.whole_step) on the mlp or the vmap
# engine, or the optimizer step alone (None)
SAVING = {"mlp": (1.3e-3, 5e-9), "vmap": (1.0e-3, 0.8e-9), None: (0.0, 0.8e-9)}


def unavailable(device="cpu") -> str | None:
    """Why ``torch.compile`` cannot fuse steps on ``device`` here, or None when it can (checked once per
    device type, the last time by compiling and running a one-line function)."""
    return _unavailable(torch.device(device).type)


@functools.cache
def _unavailable(device: str) -> str | None:
    why = _missing(device)
    if why is not None:
        return why
    try:  # headers, toolchain, triton: only a real compilation tells
        x = torch.ones(4, device=device)
        if not torch.equal(torch.compile(lambda t: t * 2 + 1, fullgraph=True)(x), x * 3):
            return "torch.compile computed a wrong result in a trial"
    except Exception as e:  # noqa: BLE001 -- whatever stops the compiler here means: not here
        return f"torch.compile failed in a trial ({one_line(e)[:160]})"
    return None


def _missing(device: str) -> str | None:
    """What ``torch.compile`` lacks here for ``device``, found without compiling (None: nothing found)."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return f"torch.compile does not support Python {sys.version.split()[0]} on this platform"
    except Exception as e:  # noqa: BLE001 -- any failure to import the compiler means: not here
        return f"torch.compile cannot be imported ({type(e).__name__})"
    if device == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "the CUDA back end of torch.compile needs triton"
        return None if has_triton() else "the CUDA back end of torch.compile needs triton, which is not installed"
    if not any(shutil.which(c) for c in ("g++", "clang++", "c++")):
        return "the CPU back end of torch.compile needs a C++ compiler (g++ or clang++) on PATH"
    return None


def saving(work: float, steps: float, whole: str | None) -> float:
    """Seconds that compiling is expected to save over ``steps`` sequential steps of ``work`` element-steps in
    all (steps x members x parameters), with the gradient of engine ``whole`` (``mlp``, ``vmap``) compiled too
    or the optimizer alone (None)."""
    per_step, per_element = SAVING[whole]
    return steps * per_step + work * per_element


def use_compile(mode: str, device, work: float, steps: float = 0, whole: str | None = None) -> bool:
    """Whether a run of ``steps`` sequential steps and ``work`` element-steps on ``device`` compiles its step
    under ``--compile mode`` (``whole``: the engine whose gradient is compiled too, see :func:`saving`)."""
    if mode == "off":
        return False
    if mode == "on":
        return True
    # auto skips the trial compilation (about 3 s of a run): a real compilation that fails goes on eagerly
    return saving(work, steps, whole) >= AUTO_SAVING and _missing(torch.device(device).type) is None


def _bias(t: int, betas) -> tuple[float, float]:
    """``k1, k2`` of step ``t``: Adam's direction is ``m / (sqrt(v) k1 + k2)``."""
    b1, b2 = betas
    c1, c2 = 1 - b1**t, 1 - b2**t
    return c1 / math.sqrt(c2), c1 * optim.EPS


def tensors(theta, lr, t: int, betas, weight_decay=None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Step ``t``'s arguments as tensors on ``theta``'s device: ``[lr, k1, k2]`` (lr a number or per member
    ``[M, 1]``) and the weight decay (None stays None), so a changing schedule never recompiles."""
    scalars = [torch.as_tensor(s, dtype=theta.dtype, device=theta.device) for s in (lr, *_bias(t, betas))]
    wd = None if weight_decay is None else torch.as_tensor(weight_decay, dtype=theta.dtype, device=theta.device)
    return scalars, wd


def riemannian(theta, grad, m, v, lr, k1, k2, target, mask, wd, b1: float, b2: float):
    """``optim.riemannian_adam_step`` as tensors: ``(theta, m, v)``; ``wd`` decays the free coordinates.

    The same step with the sphere's inner products gathered up front, so the fused code reads the parameters
    in three sweeps: the tangent gradient needs ``<grad, theta>`` and ``|theta|^2``; then, with the Adam
    direction ``u``, the step ``d = u - a theta`` (``a = <u, theta> / |theta|^2``), the new point's norm
    ``|c theta - lr u|^2`` (``c = 1 + lr a``), and the moment's component along it come from four more
    products (``<u, theta>``, ``|u|^2``, ``<m, theta>``, ``<m, u>``) of one sweep; the last sweep writes.
    Per norm group for a group mask; free coordinates take plain AdamW (decay ``wd``).
    """
    groups = None if mask is None else (mask if mask.dim() == 2 else mask.unsqueeze(0))  # [G, P]

    def dot(a, b):  # per member (and group): [M, 1] or [M, G]
        return (a * b).sum(-1, keepdim=True) if groups is None else (a * b) @ groups.T

    def spread(c):  # a per-group coefficient on its coordinates (0 on free ones)
        return c if groups is None else c @ groups

    tt = dot(theta, theta)
    g = grad - spread(dot(grad, theta) / tt) * theta
    m = torch.lerp(m, g, 1 - b1)
    v = v * b2 + (1 - b2) * g * g
    u = m / (v.sqrt() * k1 + k2)
    ut = dot(u, theta)
    c = 1 + lr * ut / tt
    step_sq = c * c * tt - 2 * lr * c * ut + lr * lr * dot(u, u)  # |c theta - lr u|^2, before the retraction
    scale = (target.unsqueeze(-1) if target.dim() == 1 else target) / step_sq.sqrt()
    along = (c * dot(m, theta) - lr * dot(m, u)) / (scale * step_sq)  # <m, new> / |new|^2
    if groups is None:
        new = (scale * c) * theta - (scale * lr) * u
    else:
        free = sphere.free(groups)
        keep = free * (1 - lr * wd) if wd is not None else free
        new = (spread(scale * c) + keep) * theta - (spread(scale) + free) * lr * u
    return new, m - spread(along) * new, v


def projected(theta, grad, m, v, lr, k1, k2, target, mask, wd, b1: float, b2: float):
    """``optim.projected_adam_step`` as tensors: ``(theta, m, v)``."""
    m = torch.lerp(m, grad, 1 - b1)
    v = v * b2 + (1 - b2) * grad * grad
    return sphere.retract(theta - lr * m / (v.sqrt() * k1 + k2), target, mask), m, v


def adamw(theta, grad, m, v, lr, k1, k2, wd, b1: float, b2: float):
    """``optim.adamw_step`` as tensors: ``(theta, m, v)``."""
    m = torch.lerp(m, grad, 1 - b1)
    v = v * b2 + (1 - b2) * grad * grad
    return theta * (1 - lr * wd) - lr * m / (v.sqrt() * k1 + k2), m, v


KERNELS = {"riemannian": riemannian, "project": projected, "adamw": adamw}
LABELS = {**{k: m.label for k, m in optim.METHODS.items()}, "adamw": "AdamW"}


@functools.cache
def _compiled(kind: str) -> Callable:
    trust_cpu_flags()
    return torch.compile(KERNELS[kind], fullgraph=True)


def trust_cpu_flags() -> None:
    """Let inductor take the vector instruction sets the CPU's flags list without probing each one.

    Before its first C++ kernel in a process, inductor builds a test library for each instruction set that
    ``/proc/cpuinfo`` lists and loads it in a new Python process: six subprocesses, 0.7-0.9 s of every run
    that compiles (``benchmarks/compile_step.py``'s machine: a first compiled call of 1.8-2.0 s with the probe,
    1.2 s without). The flags already say what the CPU runs; a build that fails anyway is an exception, which
    the callers catch (the step then goes on eagerly). A value the user set (``TORCHINDUCTOR_VEC_ISA_OK``) is
    kept."""
    from torch._inductor import config

    if config.cpp.vec_isa_ok is None:
        config.cpp.vec_isa_ok = True


class Step:
    """An optimizer step with ``landscape.engine.optim``'s calling convention, fused when ``compiled``.

    ``step(theta, grad, state, lr, target=None, mask=None, weight_decay=None) -> (theta, state)``;
    ``on_note(text)`` hears, once, how long the compilation of a new shape took.
    """

    def __init__(self, kind: str, compiled: bool, betas=optim.BETAS, on_note: Callable[[str], None] | None = None):
        self.kind, self.compiled, self.betas, self.on_note = kind, compiled, tuple(betas), on_note
        self.shapes: set = set()

    def __call__(self, theta, grad, state: optim.AdamState, lr: float, target=None, mask=None, weight_decay=None):
        if not self.compiled:
            return self._eager(theta, grad, state, lr, target, mask, weight_decay)
        t = state.t + 1
        scalars, wd = tensors(theta, lr, t, self.betas, weight_decay)
        if self.kind == "adamw":
            args = (theta, grad, state.m, state.v, *scalars, wd, *self.betas)
        else:
            args = (theta, grad, state.m, state.v, *scalars, target, mask, wd, *self.betas)
        new = tuple(theta.shape) not in self.shapes
        start = time.perf_counter()
        try:
            out = _compiled(self.kind)(*args)
        except Exception as e:  # noqa: BLE001 -- a compiler failure on this shape: the eager step computes the same
            if not new:
                raise
            self.compiled = False
            if self.on_note is not None:
                self.on_note(f"compiling the {LABELS[self.kind]} step failed ({one_line(e)[:160]}); "
                             "going on with the eager step")
            return self._eager(args[0], grad, state, lr, target, mask, weight_decay)
        theta, m, v = out
        if new:
            self.shapes.add(tuple(theta.shape))
            if self.on_note is not None:
                self.on_note(f"compiled the {LABELS[self.kind]} step for {list(theta.shape)} in "
                             f"{time.perf_counter() - start:.1f} s (once per shape; --compile off to skip)")
        return theta, optim.AdamState(m, v, t)

    def _eager(self, theta, grad, state, lr, target, mask, weight_decay):
        if self.kind == "adamw":
            return optim.adamw_step(theta, grad, state, lr, weight_decay, self.betas)
        if self.kind == "project":
            return optim.projected_adam_step(theta, grad, state, lr, target, mask)
        return optim.riemannian_adam_step(theta, grad, state, lr, target, mask, self.betas,
                                          0.0 if weight_decay is None else weight_decay)

"""The reduced landscape: for each norm w, minimize the training loss on ``||theta_c|| = w``.

A scan is K norms x R restarts = K*R *points*, numbered ``i = k * R + r``. Every
point starts from restart r's default initialization rescaled to its norm and is
optimized with a constrained method from ``landscape.optim``. Train and test
metrics are read at the final constrained iterate.

Two kinds of engine compute the same numbers. The ensemble engines optimize a
chunk of points as one batched computation (``landscape.ensemble``): ``mlp``
(hand-batched, for plain MLPs), ``vmap`` (``torch.func``, any model) and
``auto`` (``mlp`` where it applies, else ``vmap``). ``loop`` optimizes one point
at a time with ordinary autograd, the way the reference notebooks do, and is
kept as the check.

Seeds depend only on ``(seed, restart)`` for the initialization and on
``(seed, k, restart)`` for minibatch order, never on chunking or sharding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import memory, optim, sphere
from .config import ScanConfig
from .ensemble import (BatchStream, Ensemble, Layout, batches, check_kernel, derived_seed, init_params, layout_of,
                       members_per_chunk)
from .grid import parse_norms
from .tasks import Task

DONE, DIVERGED, PENDING = 1, 2, 0
STATUS_NAMES = {PENDING: "pending", DONE: "done", DIVERGED: "diverged"}
MEMORY_BUDGET = 1 << 30  # bytes of working memory per chunk when --chunk is not given


@dataclass
class Plan:
    """A scan resolved against its task: the grid, w0 and each restart's initial direction."""

    config: ScanConfig
    task: Task
    module: torch.nn.Module
    layout: Layout
    alpha: np.ndarray  # [K] norms in units of w0
    norm: np.ndarray  # [K] absolute L2 norms of the constrained parameters
    w0: float
    directions: torch.Tensor  # [R, P] default initializations, one per restart

    @property
    def n_points(self) -> int:
        return len(self.norm) * self.config.restarts

    def point(self, i: int) -> tuple[int, int]:
        return divmod(int(i), self.config.restarts)


def make_plan(config: ScanConfig, task: Task) -> Plan:
    """Resolve the grid and the initial parameters; raises ``ValueError`` for unusable settings."""
    values = parse_norms(config.norms)
    module, _ = init_params(task, None, derived_seed(config.seed, 1, 0))
    layout = layout_of(module, config.constrain)
    if not any(layout.constrained):
        raise ValueError(f"--constrain {config.constrain!r} matches no parameter; names are: {', '.join(layout.names)}")
    check_kernel(module, layout, config.engine)
    dirs = torch.stack([init_params(task, layout, derived_seed(config.seed, 1, r))[1] for r in range(config.restarts)])
    w0 = float(sphere.constrained_norm(dirs[:1], layout.sphere_mask())[0])
    if config.absolute:
        norm, alpha = values, values / w0
    else:
        alpha, norm = values, values * w0
    if norm.min() < 1e-30 or norm.max() > 1e30:
        raise ValueError(f"norms must lie between 1e-30 and 1e30 in absolute terms (float32), got "
                         f"{norm.min():.3g} to {norm.max():.3g} (w0 = {w0:.4g})")
    return Plan(config, task, module, layout, alpha, norm, w0, dirs)


def auto_chunk(plan: Plan, budget: int = MEMORY_BUDGET) -> int:
    """Points per batched computation so that working memory stays near ``budget`` bytes."""
    return min(plan.n_points, members_per_chunk(plan.task, plan.layout, plan.config.batch_size, budget))


@dataclass
class ChunkResult:
    """Results for the points ``index`` (all arrays have the chunk's points as first axis)."""

    index: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    grad_norm: np.ndarray
    steps: np.ndarray
    status: np.ndarray
    history: tuple[np.ndarray, np.ndarray] | None = None  # train, test: [M, T]
    params: np.ndarray | None = None  # [M, P]


def history_steps(config: ScanConfig) -> np.ndarray:
    """The steps at which ``--history N`` records losses: 0, N, 2N, ... <= steps."""
    if not config.history:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, config.steps + 1, config.history, dtype=np.int64)


def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


class _Data:
    """Train and test tensors on the compute device."""

    def __init__(self, task: Task, device: torch.device):
        self.x_train, self.y_train = task.x_train.to(device), task.y_train.to(device)
        self.x_test, self.y_test = task.x_test.to(device), task.y_test.to(device)


def run_chunk(plan: Plan, index: np.ndarray, device="cpu", engine: str = "auto",
              on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
              on_progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Optimize the points ``index`` and return their results.

    ``on_step(step, theta, target)`` is called after every step (tests use it to
    check the constraint); ``on_progress(n)`` reports ``n`` point-steps done.
    """
    index, device = np.asarray(index, dtype=np.int64), torch.device(device)
    memory.keep_freed_memory()
    if engine == "loop":
        return _run_loop(plan, index, device, on_step, on_progress)
    return _run_ensemble(plan, index, device, engine, on_step, on_progress)


def _setup(plan: Plan, index: np.ndarray, device: torch.device):
    cfg = plan.config
    ks, rs = index // cfg.restarts, index % cfg.restarts
    mask = plan.layout.sphere_mask(device)
    target = torch.as_tensor(plan.norm[ks], dtype=torch.float32, device=device)
    theta = sphere.retract(plan.directions[torch.as_tensor(rs)].to(device), target, mask)
    stream = None
    if cfg.batch_size and cfg.batch_size < len(plan.task.x_train):
        seeds = [derived_seed(cfg.seed, 2, k, r) for k, r in zip(ks, rs)]
        stream = BatchStream(seeds, len(plan.task.x_train), cfg.batch_size)
    return mask, target, theta, stream


def _final(plan, index, theta, target, mask, first_bad, hist, metrics, grad_fn) -> ChunkResult:
    """Metrics at the final iterate and the point statuses."""
    cfg = plan.config
    tr_loss, tr_acc = metrics(theta, "train")
    te_loss, te_acc = metrics(theta, "test")
    g = sphere.tangent(theta, grad_fn(theta), mask)
    gnorm = torch.linalg.vector_norm(g, dim=-1)
    bad = (first_bad >= 0) | ~torch.isfinite(tr_loss) | ~torch.isfinite(theta).all(-1)
    steps = torch.where(first_bad >= 0, first_bad, torch.full_like(first_bad, cfg.steps))
    status = torch.where(bad, DIVERGED, DONE)
    history = None
    if hist:
        history = (np.stack([_to_np(h[0]) for h in hist], -1), np.stack([_to_np(h[1]) for h in hist], -1))
    acc = plan.task.accuracy is not None
    nan = np.full(len(index), np.nan)
    return ChunkResult(
        index=index,
        train_loss=_to_np(tr_loss), test_loss=_to_np(te_loss),
        train_acc=_to_np(tr_acc) if acc else nan, test_acc=_to_np(te_acc) if acc else nan,
        grad_norm=_to_np(gnorm), steps=steps.cpu().numpy(), status=status.cpu().numpy().astype(np.int8),
        history=history,
        params=theta.detach().cpu().numpy() if cfg.save_params else None,
    )


def _run_ensemble(plan, index, device, kernel, on_step, on_progress) -> ChunkResult:
    cfg = plan.config
    data = _Data(plan.task, device)
    ens = Ensemble(plan.task, copy.deepcopy(plan.module).to(device), plan.layout, kernel)
    mask, target, theta, stream = _setup(plan, index, device)
    step_fn = optim.METHODS[cfg.method]
    state = optim.AdamState.zeros_like(theta)
    first_bad = torch.full((len(index),), -1, dtype=torch.int64, device=device)

    def metrics(th, split):
        x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
        return ens.metrics(th, x, y)

    hist = []
    for t, idx in enumerate(batches(stream, cfg.steps, device)):
        if cfg.history and t % cfg.history == 0:
            hist.append((metrics(theta, "train")[0], metrics(theta, "test")[0]))
        if idx is None:
            grad, loss = ens.grad(theta, data.x_train, data.y_train)
        else:
            grad, loss = ens.grad(theta, data.x_train[idx], data.y_train[idx], per_member=True)
        first_bad = torch.where(~torch.isfinite(loss) & (first_bad < 0), t, first_bad)
        theta, state = step_fn(theta, grad, state, optim.cosine_lr(cfg.lr, t, cfg.steps), target, mask)
        if on_step is not None:
            on_step(t + 1, theta, target)
        if on_progress is not None:
            on_progress(len(index))
    if cfg.history and cfg.steps % cfg.history == 0:
        hist.append((metrics(theta, "train")[0], metrics(theta, "test")[0]))
    grad_fn = lambda th: ens.grad(th, data.x_train, data.y_train)[0]  # noqa: E731
    return _final(plan, index, theta, target, mask, first_bad, hist, metrics, grad_fn)


def _run_loop(plan, index, device, on_step, on_progress) -> ChunkResult:
    """The reference: one point after the other, each alone, with ordinary autograd on an ``nn.Module``."""
    return concat([_run_ensemble(plan, index[j:j + 1], device, "loop", on_step, on_progress)
                   for j in range(len(index))])


def concat(results: list[ChunkResult]) -> ChunkResult:
    """Join chunk results along the point axis."""
    def cat(name):
        vals = [getattr(r, name) for r in results]
        return None if vals[0] is None else np.concatenate(vals)

    history = None
    if results[0].history is not None:
        history = tuple(np.concatenate([r.history[i] for r in results]) for i in range(2))
    names = ["index", "train_loss", "test_loss", "train_acc", "test_acc", "grad_norm", "steps", "status", "params"]
    return ChunkResult(**{n: cat(n) for n in names}, history=history)


def chunks(points: np.ndarray, size: int) -> list[np.ndarray]:
    """Split the points to compute into consecutive chunks of at most ``size``."""
    return [points[i:i + size] for i in range(0, len(points), size)]

"""The reduced landscape: for each norm w, minimize the training loss on ``||theta_c|| = w``.

A scan is K norms x R restarts = K*R *points*, numbered ``i = k * R + r``. Every
point starts from restart r's default initialization rescaled to its norm and is
optimized with a constrained method from ``landscape.engine.optim``. Train and test
metrics are read at the final constrained iterate.

Two kinds of engine compute the same numbers. The ensemble engines optimize a
chunk of points as one batched computation (``landscape.engine.ensemble``): ``mlp``
(hand-batched, for plain MLPs), ``vmap`` (``torch.func``, any model) and
``auto`` (``mlp`` where it applies, else ``vmap``). ``loop`` optimizes one point
at a time with ordinary autograd, the way the reference notebooks do, and is
kept as the check.

Seeds depend only on ``(seed, restart)`` for the initialization and on
``(seed, k, restart)`` for minibatch order, never on chunking or sharding.

A continuation branch (``--branch down|up|both``) visits the norms in order
instead, each restart's point warm-started from its minimizer at the previous
norm rescaled (``run_branch_step``); the first point of a branch is the
independent scan's point at that norm. The norms are sequential, the restarts
(and the two branches of ``both``) one ensemble.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import schedule
from ..engine import curvature, footprint, fused, optim, sphere
from ..config.settings import ScanConfig
from ..engine.layout import Layout
from ..config.grid import norm_groups, parse_norms, product
from ..engine.worker import (
    MEMORY_BUDGET, Worker, check_curvature, chunk_size, derived_seed, hessian_bytes, init_params, model_of
)
from ..status import Status
from ..tasks import Task
from ..engine.whole_step import WholeStep, planned
from ..store import CURVATURE


@dataclass
class Plan:
    """A scan resolved against its task: the grid, w0 and each restart's initial direction."""

    config: ScanConfig
    task: Task
    module: torch.nn.Module
    layout: Layout
    alpha: np.ndarray  # [K] norms in units of w0 ([K, 2] for a two-norm grid, each group's own w0)
    norm: np.ndarray  # [K] absolute L2 norms of the constrained parameters ([K, 2]: each group's)
    w0: float | np.ndarray  # the constrained norm at the default initialization ([2]: each group's)
    directions: torch.Tensor  # [R, P] default initializations, one per restart
    groups: list[str] | None = None  # a two-norm grid's globs
    shape: tuple[int, ...] = ()  # a two-norm grid's (K1, K2); the point's k = k1 * K2 + k2
    notes: tuple[str, ...] = ()  # one line each for the run's output (an engine that fell back)
    lanczos: int = 0  # Lanczos iterations per point with --curvature (0: none)
    # derived, plain values the store reads (it calls nothing of this module)
    method_label: str = field(init=False)
    history_steps: np.ndarray = field(init=False)
    n_points: int = field(init=False)

    def __post_init__(self):
        self.method_label = optim.METHODS[self.config.method].label
        self.history_steps = history_steps(self.config)
        self.n_points = len(self.norm) * self.config.restarts

    def point(self, i: int) -> tuple[int, int]:
        return divmod(int(i), self.config.restarts)


def make_plan(config: ScanConfig, task: Task) -> Plan:
    """Resolve the grid and the initial parameters; raises ``ValueError`` for unusable settings.

    A two-norm grid (``--norms GLOB=SPEC`` twice) is the product of the groups' norms, the first group's
    varying slowest; each group's alpha is in units of its own w0.
    """
    groups = norm_groups(config.norms)
    globs = [g for g, _ in groups] if groups else None
    module, layout, config.engine, note = model_of(task, config.constrain, config.engine,
                                                   derived_seed(config.seed, 1, 0), globs)
    shape: tuple[int, ...] = ()
    if groups:
        axes = [parse_norms(spec) for _, spec in groups]
        shape = tuple(len(a) for a in axes)
        values = product(axes)
    else:
        values = parse_norms(config.norms)
    lanczos = _lanczos(config, layout)
    footprint.check(_holds(config, len(values), layout.size, lanczos))
    dirs = torch.stack([init_params(task, layout, derived_seed(config.seed, 1, r))[1] for r in range(config.restarts)])
    if config.curvature:
        check_curvature(task, module, layout, config.engine, dirs[0], "--curvature")
    w0 = sphere.constrained_norm(dirs[:1], layout.sphere_mask())[0].double().numpy()
    if not groups:
        w0 = float(w0)
    if config.absolute:
        norm, alpha = values, values / w0
    else:
        alpha, norm = values, values * w0
    if norm.min() < 1e-30 or norm.max() > 1e30:
        raise ValueError(f"norms must lie between 1e-30 and 1e30 in absolute terms (float32), got "
                         f"{norm.min():.3g} to {norm.max():.3g} (w0 = {np.round(w0, 4)})")
    return Plan(config, task, module, layout, alpha, norm, w0, dirs, globs, shape, (note,) if note else (), lanczos)


def _lanczos(config: ScanConfig, layout: Layout) -> int:
    """The Lanczos iterations of ``--curvature K`` (0 without it); ``ValueError`` for a K or ``--lanczos`` beyond
    the tangent space's dimension."""
    if not config.curvature:
        return 0
    dim = curvature.dimension(layout)
    if config.curvature > dim:
        raise ValueError(f"--curvature {config.curvature}: the tangent space has only {dim} dimensions (the model's "
                         f"{layout.size} parameters less one per sphere); ask for at most {dim} eigenvalues")
    if config.lanczos is not None and config.lanczos > dim:
        raise ValueError(f"--lanczos {config.lanczos}: at most the tangent space's dimension, {dim}")
    return config.lanczos or curvature.default_steps(config.curvature, dim)


def _holds(config: ScanConfig, n_norms: int, n_params: int, lanczos: int = 0) -> list[tuple[str, float]]:
    """What a scan holds at once (``landscape.engine.footprint``): its restarts' initializations, and each point's results
    (losses, accuracies, step count, status; the saved parameters and loss history where asked for)."""
    r, points = config.restarts, n_norms * config.restarts
    history = (config.steps // config.history + 2) * 2 * footprint.FLOAT64 if config.history else 0
    per_point = 6 * footprint.FLOAT64 + history + (n_params * footprint.FLOAT32 if config.save_params else 0)
    per_point += (config.curvature + 4 + 2 * lanczos) * footprint.FLOAT64 if config.curvature else 0
    return [(f"--restarts {r} ({r} initializations of {n_params} parameters)", r * n_params * footprint.FLOAT32),
            (f"{points} point{'s' if points > 1 else ''} ({n_norms} norm{'s' if n_norms > 1 else ''} x {r} restart"
             f"{'s' if r > 1 else ''}) with --steps {config.steps}"
             + (f", --history {config.history}" if config.history else "")
             + (", --save-params" if config.save_params else "")
             + (f", --curvature {config.curvature}" if config.curvature else "")
             + ": the results, held whole in memory at each commit with its read-back",
             footprint.FILE_COPIES * points * per_point)]


def auto_chunk(plan: Plan, budget: int = MEMORY_BUDGET) -> int:
    """Points per batched computation so that working memory stays near ``budget`` bytes (with ``--curvature``,
    each point's Lanczos basis and a second full-data pass for the Hessian-vector products counted too)."""
    extra = hessian_bytes(plan.task, plan.layout, plan.lanczos) if plan.config.curvature else 0
    return min(plan.n_points, chunk_size(plan.task, plan.layout, plan.config.batch_size, budget, extra))


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
    curvature: tuple[np.ndarray, ...] | None = None  # with --curvature: store.CURVATURE's values, in its order


def history_steps(config: ScanConfig) -> np.ndarray:
    """The steps at which ``--history N`` records losses: 0, N, 2N, ... <= steps."""
    if not config.history:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, config.steps + 1, config.history, dtype=np.int64)


def _to_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def run_chunk(plan: Plan, index: np.ndarray, device=None, engine: str | None = None,
              on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
              on_progress: Callable[[int], None] | None = None, step: fused.Step | None = None) -> ChunkResult:
    """Optimize the points ``index`` and return their results.

    ``on_step(step, theta, target)`` is called after every step (tests use it to
    check the constraint); ``on_progress(n)`` reports ``n`` point-steps done.
    ``device`` and ``engine`` default to the config's; the ``loop`` engine
    computes one point after the other, each alone. ``step``: the optimizer step
    (:func:`stepper`; default the eager reference of the config's method).
    """
    index = np.asarray(index, dtype=np.int64)
    engine = engine or plan.config.engine
    worker = Worker(plan.task, plan.module, plan.layout, engine, device or plan.config.device)
    if engine == "loop":
        return concat([_optimize(plan, worker, index[j:j + 1], on_step, on_progress, step=step)
                       for j in range(len(index))])
    return _optimize(plan, worker, index, on_step, on_progress, step=step)


def stepper(plan: Plan, on_note: Callable[[str], None] | None = None, size: int | None = None) -> fused.Step:
    """The scan's optimizer step under ``--compile``, decided on the whole scan (its sequential steps and its
    steps x points x parameters, computed ``size`` points at a time), so a resumed or sharded scan decides as
    the whole one does. Continuation branches run ``K`` norms one after the other."""
    cfg = plan.config
    size = size or auto_chunk(plan)
    branches = {"independent": 0, "down": 1, "up": 1, "both": 2}[cfg.branch]
    if branches:
        calls = len(plan.norm) * -(-branches * cfg.restarts // size)
    else:
        calls = -(-plan.n_points // size)
    work = float(cfg.steps) * plan.n_points * max(branches, 1) * plan.layout.size
    whole = planned(plan, min(size, branches * cfg.restarts if branches else plan.n_points))  # one step's members
    return fused.Step(cfg.method, fused.use_compile(cfg.compile, cfg.device, work, cfg.steps * calls, whole),
                      on_note=on_note)


def start(plan: Plan, index: np.ndarray, device="cpu", warm: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The points' target norms ``[M]`` and starting parameters ``[M, P]``: restart r's direction at norm k, or
    (a continuation branch) ``warm [M, P]``, the previous minimizers, rescaled to norm k (rows that are not
    finite start from the direction)."""
    ks, rs = index // plan.config.restarts, index % plan.config.restarts
    target = torch.as_tensor(plan.norm[ks], dtype=torch.float32, device=device)
    origin = plan.directions[torch.as_tensor(rs)].to(device)
    if warm is not None:
        warm = torch.as_tensor(warm, dtype=origin.dtype, device=device)
        origin = torch.where(torch.isfinite(warm).all(-1, keepdim=True), warm, origin)
    theta = sphere.retract(origin, target, plan.layout.sphere_mask(device))
    return target, theta


def branch_order(n_norms: int, branch: str) -> np.ndarray:
    """The norm indices a continuation branch visits: ``down`` from the largest, ``up`` from the smallest."""
    order = np.arange(n_norms)
    return order[::-1] if branch == "down" else order


def run_branch_step(plan: Plan, index: np.ndarray, warm: np.ndarray | None, device=None, engine: str | None = None,
                    on_step=None, on_progress=None, step: fused.Step | None = None) -> ChunkResult:
    """One norm of continuation branches: optimize the points ``index`` (any branches, as one ensemble), each
    started from ``warm [M, P]`` (its predecessor's minimizer; None or NaN rows: from its initialization).
    The result carries the minimizers (``params``) for the next norm."""
    index = np.asarray(index, dtype=np.int64)
    engine = engine or plan.config.engine
    worker = Worker(plan.task, plan.module, plan.layout, engine, device or plan.config.device)
    warm_t = None if warm is None else torch.as_tensor(warm, dtype=torch.float32)
    if engine == "loop":
        return concat([_optimize(plan, worker, index[j:j + 1], on_step, on_progress,
                                 None if warm_t is None else warm_t[j:j + 1], keep_params=True, step=step)
                       for j in range(len(index))])
    return _optimize(plan, worker, index, on_step, on_progress, warm_t, keep_params=True, step=step)


def _optimize(plan: Plan, worker: Worker, index: np.ndarray, on_step, on_progress, warm=None,
              keep_params: bool = False, step: fused.Step | None = None) -> ChunkResult:
    """The constrained optimization of the points ``index`` as one ensemble."""
    cfg, device, mask = plan.config, worker.device, worker.mask
    ks, rs = index // cfg.restarts, index % cfg.restarts
    target, theta = start(plan, index, device, warm)
    stream = worker.stream([derived_seed(cfg.seed, 2, k, r) for k, r in zip(ks, rs)], cfg.batch_size)
    step_fn = WholeStep(step or fused.Step(cfg.method, False), worker)  # eager reference unless a stepper given
    state = optim.AdamState.zeros_like(theta)
    first_bad = torch.full((len(index),), -1, dtype=torch.int64, device=device)

    def losses(th):
        return worker.evaluate(th, "train")[0], worker.evaluate(th, "test")[0]

    hist = []
    for t, idx in enumerate(worker.batches(stream, cfg.steps)):
        if cfg.history and t % cfg.history == 0:
            hist.append(losses(theta))
        theta, state, loss = step_fn(theta, state, idx, schedule.cosine_lr(cfg.lr, t, cfg.steps), target, mask)
        first_bad = torch.where(~torch.isfinite(loss) & (first_bad < 0), t, first_bad)
        if on_step is not None:
            on_step(t + 1, theta, target)
        if on_progress is not None:
            on_progress(len(index))
    if cfg.history and cfg.steps % cfg.history == 0:
        hist.append(losses(theta))
    return _final(plan, worker, index, theta, first_bad, hist, keep_params)


def _final(plan: Plan, worker: Worker, index, theta, first_bad, hist, keep_params: bool = False) -> ChunkResult:
    """Metrics at the final iterate and the point statuses."""
    cfg = plan.config
    tr_loss, tr_acc = worker.evaluate(theta, "train")
    te_loss, te_acc = worker.evaluate(theta, "test")
    grad = worker.grad(theta)[0]
    gnorm = torch.linalg.vector_norm(sphere.tangent(theta, grad, worker.mask), dim=-1)
    bad = (first_bad >= 0) | ~torch.isfinite(tr_loss) | ~torch.isfinite(theta).all(-1)
    curved = _curvature(plan, worker, index, theta, grad) if cfg.curvature else None
    if curved is not None:  # Hessian products that overflow at finite parameters: the point diverged too
        for values in curved:
            values[bad.cpu().numpy()] = np.nan
        bad |= torch.as_tensor(~np.isfinite(curved[0]).all(-1), device=bad.device)
    steps = torch.where(first_bad >= 0, first_bad, torch.full_like(first_bad, cfg.steps))
    status = torch.where(bad, int(Status.DIVERGED), int(Status.DONE))
    history = None
    if hist:
        history = (np.stack([_to_np(h[0]) for h in hist], -1), np.stack([_to_np(h[1]) for h in hist], -1))
    acc = plan.task.classification
    nan = np.full(len(index), np.nan)
    return ChunkResult(
        index=index,
        train_loss=_to_np(tr_loss), test_loss=_to_np(te_loss),
        train_acc=_to_np(tr_acc) if acc else nan, test_acc=_to_np(te_acc) if acc else nan,
        grad_norm=_to_np(gnorm), steps=steps.cpu().numpy(), status=status.cpu().numpy().astype(np.int8),
        history=history,
        params=theta.detach().cpu().numpy() if cfg.save_params or keep_params else None,
        curvature=curved,
    )


def _curvature(plan: Plan, worker: Worker, index: np.ndarray, theta: torch.Tensor,
               grad: torch.Tensor) -> tuple[np.ndarray, ...]:
    """``--curvature``: the Riemannian Hessian's spectrum at the points ``index`` (``landscape.engine.curvature``),
    in ``store.CURVATURE``'s order; each point's random vectors from its own seed."""
    cfg = plan.config
    x, y = worker.data["train"]
    seeds = [derived_seed(cfg.seed, 4, k, r) for k, r in zip(index // cfg.restarts, index % cfg.restarts)]
    s = curvature.measure(lambda t: worker.ensemble.hessian(t, x, y), theta, grad, worker.mask, seeds,
                          cfg.curvature, cfg.curvature_samples, plan.lanczos)
    return tuple(getattr(s, name) for name in CURVATURE)


def concat(results: list[ChunkResult]) -> ChunkResult:
    """Join chunk results along the point axis."""
    def cat(name):
        vals = [getattr(r, name) for r in results]
        if vals[0] is None:
            return None
        if isinstance(vals[0], tuple):  # history: (train, test)
            return tuple(np.concatenate(parts) for parts in zip(*vals))
        return np.concatenate(vals)

    return ChunkResult(**{f.name: cat(f.name) for f in dataclasses.fields(ChunkResult)})


def rows(result: ChunkResult, part: slice) -> ChunkResult:
    """The points ``part`` of a chunk result (the inverse of :func:`concat`)."""
    return ChunkResult(**{f.name: (v[part] if isinstance(v, np.ndarray) else
                                   tuple(x[part] for x in v) if isinstance(v, tuple) else v)
                          for f in dataclasses.fields(ChunkResult) for v in [getattr(result, f.name)]})

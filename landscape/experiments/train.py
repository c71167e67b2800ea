"""Training trajectories: AdamW from a scaled default initialization, logged over steps.

A sweep is the product of weight decays x init scales x seeds; every member is
one trajectory and the whole sweep runs as one ensemble on the engine the scan
uses (``landscape.engine.worker``), with per-member weight decay and init scale. At every
logged step each registered metric (``landscape.metrics``) is recorded.

Member with seed s starts from the default initialization drawn with the same
seed as a scan's restart 0 with ``--seed s``, multiplied by its init scale on the
constrained parameters, and reads minibatches from a stream seeded by s alone,
so members that differ only in weight decay or init scale see the same batches.

With ``fix_norm`` every member trains on the sphere of its initial norm of the
constrained parameters instead (Riemannian Adam, ``landscape.engine.optim``, the scan's
constraint): weight decay then acts on the free parameters only. The learning
rate follows ``warmup`` and ``schedule`` (``landscape.config.schedule``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..config import schedule
from ..engine import allocator, footprint, fused, optim, sphere
from .. import metrics, store
from ..metrics import effective
from ..config.settings import Member, TrainConfig
from ..engine.layout import Layout, flatten
from ..engine.worker import Worker, check_curvature, chunk_size, derived_seed, hessian_bytes, init_params, model_of
from ..store.train_state import TrainState
from ..tasks import Task, contract
from ..engine.whole_step import WholeStep, planned


def log_steps(config: TrainConfig) -> np.ndarray:
    """Steps at which metrics are logged: log-spaced by default (grokking is read on log time)."""
    if config.log_every:
        steps = np.arange(0, config.steps + 1, config.log_every)
    else:
        steps = np.round(np.geomspace(1, config.steps, config.log_points)).astype(np.int64)
    return np.unique(np.concatenate([[0], steps, [config.steps]])).astype(np.int64)


@dataclass
class TrainPlan:
    """A sweep resolved against its task: the model, its layout, the members and what is logged when."""

    config: TrainConfig
    task: Task
    module: torch.nn.Module
    layout: Layout
    members: list[Member]
    log_steps: np.ndarray
    series: dict[str, tuple[str, str]]  # every logged series: name -> (units, description)
    metrics: list = field(default_factory=list)  # the metrics.Metric entries logged
    skipped: dict[str, str] = field(default_factory=dict)  # default metrics that do not apply: name -> why
    notes: tuple[str, ...] = ()  # one line each for the run's output (an engine that fell back, skipped metrics)
    effective: dict[str, dict] = field(default_factory=dict)  # member name -> its effective theory's attributes


def make_plan(config: TrainConfig, task: Task) -> TrainPlan:
    module, layout, config.engine, note = model_of(task, config.constrain, config.engine, derived_seed(0, 1, 0))
    chosen = metrics.select(task, config.metrics)
    skipped = metrics.skipped(task) if config.metrics is None else {}
    notes = ([note] if note else []) + ([metrics.describe_skipped(skipped)] if skipped else [])
    series = metrics.series(layout, chosen)
    if any(m.name == "sharpness" for m in chosen):
        check_curvature(task, module, layout, config.engine, flatten(module, layout), "--metrics sharpness")
    if config.group is not None and not layout.matching(config.group):
        raise ValueError(f"--group {config.group!r} matches no parameter; names are: {', '.join(layout.names)}")
    rows = footprint.FLOAT64 * (1 + len(series)) * _n_logged(config)
    footprint.check([(_logged_rows(config), rows)])
    members = config.members()
    per_member = len(store.CHECKPOINT_SLOTS) * 3 * footprint.FLOAT32 * layout.size + rows  # checkpoints (theta, m, v), logs
    footprint.check([(f"{len(members)} trajectories of {layout.size} parameters with {_logged_rows(config)}: the file, "
                  "held whole in memory at each commit with its read-back", footprint.FILE_COPIES * len(members)
                  * per_member)])
    theory = {}
    if effective.needs(task) is None:  # Liu et al.'s effective theory of each member's training examples
        counts = [m.train_count(task.n_train) for m in members]
        ideal = {n: effective.ideal_test_accuracy(task, n) for n in set(counts)}
        theory = {m.name: effective.attributes(spec, ideal[n])
                  for m, n, spec in zip(members, counts, effective.spectra(task, counts))}
    return TrainPlan(config, task, module, layout, members, log_steps(config), series, chosen, skipped, tuple(notes),
                     theory)


def _n_logged(config: TrainConfig) -> int:
    """How many steps :func:`log_steps` builds before dropping repeats, at most (computed without building them)."""
    return (config.steps // config.log_every if config.log_every else config.log_points) + 2


def _logged_rows(config: TrainConfig) -> str:
    how = f"--log-every {config.log_every}" if config.log_every else f"--log-points {config.log_points}"
    return f"--steps {config.steps} with {how} (up to {_n_logged(config)} logged rows of each series)"


def initial_theta(plan: TrainPlan, member: Member) -> torch.Tensor:
    """Default initialization for the member's seed (``torch_seed``: the seed itself, else one derived from it),
    constrained part scaled by its init scale."""
    seed = member.seed if plan.config.torch_seed else derived_seed(member.seed, 1, 0)
    theta = init_params(plan.task, plan.layout, seed)[1]
    mask = plan.layout.mask()
    return torch.where(mask > 0, theta * member.init_scale, theta)


def fresh_state(plan: TrainPlan, group: list[Member]) -> TrainState:
    """Step 0: every member at its initialization, AdamW's moments zero."""
    theta = torch.stack([initial_theta(plan, m) for m in group])
    return TrainState(0, theta, torch.zeros_like(theta), torch.zeros_like(theta), 0)


@dataclass
class Log:
    """Metrics at logged steps for a group of members (each array ``[M, n]``)."""

    step: list[int] = field(default_factory=list)
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.step.append(step)
        for k, v in values.items():
            self.rows.setdefault(k, []).append(v.detach().to("cpu", torch.float64).numpy())

    def arrays(self, names=None, members: int = 0) -> dict[str, np.ndarray]:
        """``{series: [M, n]}`` for every series in ``names`` (default: all logged; ``[M, 0]`` when none was)."""
        return {k: np.stack(self.rows[k], axis=1) if self.rows else np.zeros((members, 0))
                for k in (self.rows if names is None else names)}

    def __len__(self) -> int:
        return len(self.step)


def run(plan: TrainPlan, group: list[Member], state: TrainState, device=None, engine: str | None = None,
        on_checkpoint: Callable[[TrainState, Log], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None, step: fused.Step | None = None) -> TrainState:
    """Train ``group`` from ``state`` to ``config.steps``.

    Every ``checkpoint_every`` steps and at the end, ``on_checkpoint(state, log)``
    receives the state and the metrics logged since the previous checkpoint.
    When ``should_stop()`` turns true, the current state is checkpointed and
    the run returns early (a resumed run continues exactly from there).
    ``device`` and ``engine`` default to the config's; ``step`` is the optimizer step (:func:`stepper`;
    default the eager reference).
    """
    cfg = plan.config
    step = step or stepper(plan, compile_mode="off")
    worker = Worker(plan.task, plan.module, plan.layout, engine or cfg.engine, device or cfg.device)
    dev = worker.device
    whole = WholeStep(step, worker)
    base_lr, wd = rates(plan, group, dev)
    worker.train_on([m.train_count(plan.task.n_train) for m in group])
    if cfg.fix_norm:  # each member's initial norm, recomputed from its seed: a resumed run holds the same one
        target = sphere.constrained_norm(torch.stack([initial_theta(plan, m) for m in group]).to(dev), worker.mask)
    theta = torch.as_tensor(state.theta).to(dev)
    adam = optim.AdamState(torch.as_tensor(state.m).to(dev), torch.as_tensor(state.v).to(dev), state.adam_t)
    stream = worker.stream([derived_seed(m.seed, 3) for m in group], cfg.batch_size, skip=state.step)
    logged = set(plan.log_steps.tolist())
    log = Log()
    probe = contract.probe_of(plan.module, plan.task.structure) if any(m.probe for m in plan.metrics) else None
    dynamics = _dynamics(plan, group) if any(m.name == "effective_rqi" for m in plan.metrics) else None

    def record(step):
        ctx = metrics.Context(theta, worker, probe, step=step, effective=dynamics, seeds=[m.seed for m in group],
                              on_sphere=cfg.fix_norm)
        log.add(step, metrics.evaluate(ctx, plan.metrics))
        allocator.release_freed_memory()  # the evaluation's blocks, of other shapes than a step's: see allocator

    def checkpoint(step) -> TrainState:
        nonlocal log
        now = TrainState(step, theta, adam.m, adam.v, adam.t)
        if on_checkpoint is not None:
            on_checkpoint(now, log)
        log = Log()
        return now

    t = state.step
    for idx in worker.batches(stream, cfg.steps - state.step):
        if t in logged and not (t == state.step and t > 0):  # a resumed start step is already logged
            record(t)
        if t > state.step and t % cfg.checkpoint_every == 0:
            checkpoint(t)
        lr = schedule.scheduled_lr(base_lr, t, cfg.steps, cfg.warmup, cfg.schedule)
        if cfg.fix_norm:
            theta, adam, _ = whole(theta, adam, idx, lr, target, worker.mask, wd)
        else:
            theta, adam, _ = whole(theta, adam, idx, lr, weight_decay=wd)
        t += 1
        if on_progress is not None:
            on_progress(1)
        if should_stop is not None and should_stop():
            break
    if t in logged:
        record(t)
    return checkpoint(t)


def rates(plan: TrainPlan, group: list[Member], device) -> tuple:
    """The group's peak learning rates and weight decays: ``[M, 1]`` (a shared learning rate one number: the step
    then runs exactly as it always has), or ``[M, P]`` with ``--group``, its parameters' coordinates holding the
    group's own."""
    wd = torch.tensor([m.weight_decay for m in group], dtype=torch.float32, device=device)[:, None]
    lrs = [m.lr for m in group]
    if plan.config.group is not None:
        inside = plan.layout.names_mask(plan.layout.matching(plan.config.group), device) > 0
        r = torch.tensor([m.rates() for m in group], dtype=torch.float32, device=device)
        return torch.where(inside, r[:, 2:3], r[:, 0:1]), torch.where(inside, r[:, 3:4], r[:, 1:2])
    return (lrs[0] if len(set(lrs)) == 1 else torch.tensor(lrs, dtype=torch.float32, device=device)[:, None]), wd


def _dynamics(plan: TrainPlan, group: list[Member]) -> effective.Dynamics:
    """The group's effective dynamics: from each member's initial embeddings, at its embedding's learning rate,
    on the clock of the learning-rate schedule."""
    cfg = plan.config
    in_group = cfg.group is not None and plan.task.structure["embedding"] in plan.layout.matching(cfg.group)
    eta = [m.rates()[2] if in_group else m.lr for m in group]
    factors = [schedule.scheduled_lr(1.0, s, cfg.steps, cfg.warmup, cfg.schedule) for s in range(cfg.steps)]
    clock = np.concatenate([[0.0], np.cumsum(factors)])
    theta0 = torch.stack([initial_theta(plan, m) for m in group])
    return effective.Dynamics.of(plan.task, plan.layout, theta0, [m.train_count(plan.task.n_train) for m in group],
                                 eta, lambda step: float(clock[step]))


def stepper(plan: TrainPlan, on_note: Callable[[str], None] | None = None,
            compile_mode: str | None = None, size: int | None = None) -> fused.Step:
    """The sweep's optimizer step (AdamW, or Riemannian AdamW with ``--fix-norm``) under ``--compile`` (or
    ``compile_mode``), decided on the whole sweep (its sequential steps, ``size`` members at a time, and its
    steps x members x parameters), so a resumed or sharded run decides alike."""
    cfg = plan.config
    members = len(cfg.members())
    size = size or members
    work = float(cfg.steps) * members * plan.layout.size
    whole = planned(plan, min(size, members))
    compiled = fused.use_compile(compile_mode or cfg.compile, cfg.device, work, cfg.steps * -(-members // size),
                                 whole)
    return fused.Step("riemannian" if cfg.fix_norm else "adamw", compiled, cfg.betas, on_note)


def saver(path, plan: TrainPlan, group: list[Member], guard=contextlib.nullcontext):
    """An ``on_checkpoint`` for :func:`run` that stores the group's log and state in ``path`` (inside ``guard()``)."""
    names = [m.name for m in group]

    def save(state: TrainState, log: Log) -> None:
        state = state.numpy()
        series = log.arrays(plan.series, len(names))
        diverged = ~np.isfinite(state.theta).all(-1)  # NaN or inf in a member: diverged, the others go on
        for key in ("train_loss", "test_loss"):
            diverged |= ~np.isfinite(series[key]).all(-1)
        with guard():
            store.write_trajectories(path, names, state, log.step, series, done=state.step >= plan.config.steps,
                                     meta=plan.series, diverged=diverged.tolist())
    return save


def members_per_chunk(plan: TrainPlan) -> int:
    """Trajectories per batched computation when ``--chunk`` is not given (with ``sharpness`` logged, each one's
    Lanczos basis and a second full-data pass for the Hessian-vector products counted too)."""
    from ..metrics.sharpness import STEPS

    extra = hessian_bytes(plan.task, plan.layout, STEPS) if any(m.name == "sharpness" for m in plan.metrics) else 0
    return chunk_size(plan.task, plan.layout, plan.config.batch_size, extra=extra)

"""Free-training trajectories: AdamW from a scaled default initialization, logged over steps.

A sweep is the product of weight decays x init scales x seeds; every member is
one trajectory and the whole sweep runs as one ensemble on the engine the scan
uses (``landscape.ensemble``), with per-member weight decay and init scale.

Member with seed s starts from the default initialization drawn with the same
seed as a scan's restart 0 with ``--seed s``, multiplied by its init scale on the
constrained parameters, and reads minibatches from a stream seeded by s alone,
so members that differ only in weight decay or init scale see the same batches.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import memory, optim, sphere
from .config import TrainConfig
from .ensemble import BatchStream, Ensemble, Layout, batches, check_kernel, derived_seed, init_params, layout_of
from .tasks import Task


@dataclass(frozen=True)
class Member:
    """One trajectory's own hyperparameters."""

    weight_decay: float
    init_scale: float
    seed: int

    @property
    def name(self) -> str:
        return f"wd{self.weight_decay:g}_init{self.init_scale:g}_seed{self.seed}"


def members(config: TrainConfig) -> list[Member]:
    """The sweep: every (weight decay, init scale, seed) combination, in that nesting order."""
    return [Member(float(wd), float(a), int(s))
            for wd, a, s in itertools.product(config.weight_decay, config.init_scale, config.seeds)]


def log_steps(config: TrainConfig) -> np.ndarray:
    """Steps at which metrics are logged: log-spaced by default (grokking is read on log time)."""
    if config.log_every:
        steps = np.arange(0, config.steps + 1, config.log_every)
    else:
        steps = np.round(np.geomspace(1, config.steps, config.log_points)).astype(np.int64)
    return np.unique(np.concatenate([[0], steps, [config.steps]])).astype(np.int64)


@dataclass
class TrainPlan:
    config: TrainConfig
    task: Task
    module: torch.nn.Module
    layout: Layout
    members: list[Member]
    log_steps: np.ndarray


def make_plan(config: TrainConfig, task: Task) -> TrainPlan:
    module, _ = init_params(task, None, derived_seed(0, 1, 0))
    layout = layout_of(module, config.constrain)
    if not any(layout.constrained):
        raise ValueError(f"--constrain {config.constrain!r} matches no parameter; names are: {', '.join(layout.names)}")
    check_kernel(module, layout, config.engine)
    return TrainPlan(config, task, module, layout, members(config), log_steps(config))


def initial_theta(plan: TrainPlan, member: Member) -> torch.Tensor:
    """Default initialization for the member's seed, constrained part scaled by its init scale."""
    theta = init_params(plan.task, plan.layout, derived_seed(member.seed, 1, 0))[1]
    mask = plan.layout.mask()
    return torch.where(mask > 0, theta * member.init_scale, theta)


@dataclass
class State:
    """Where a group of members stands: parameters, AdamW moments and the step reached."""

    step: int
    theta: torch.Tensor  # [M, P]
    adam: optim.AdamState

    @classmethod
    def fresh(cls, plan: TrainPlan, group: list[Member]) -> "State":
        theta = torch.stack([initial_theta(plan, m) for m in group])
        return cls(0, theta, optim.AdamState.zeros_like(theta))


@dataclass
class Log:
    """Metrics at logged steps for a group of members (each array ``[M, n]``)."""

    step: list[int] = field(default_factory=list)
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    NAMES = ("norm", "constrained_norm", "train_loss", "test_loss", "train_acc", "test_acc")

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.step.append(step)
        for k in self.NAMES:
            self.rows.setdefault(k, []).append(values[k].detach().to("cpu", torch.float64).numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v, axis=1) for k, v in self.rows.items()}

    def __len__(self) -> int:
        return len(self.step)


def run(plan: TrainPlan, group: list[Member], state: State, device="cpu", engine: str = "auto",
        on_checkpoint: Callable[[State, Log], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> State:
    """Train ``group`` from ``state`` to ``config.steps``.

    Every ``checkpoint_every`` steps and at the end, ``on_checkpoint(state, log)``
    receives the state and the metrics logged since the previous checkpoint.
    When ``should_stop()`` turns true, the current state is checkpointed and
    the run returns early (a resumed run continues exactly from there).
    """
    cfg = plan.config
    device = torch.device(device)
    memory.keep_freed_memory()
    task = plan.task
    x_tr, y_tr = task.x_train.to(device), task.y_train.to(device)
    x_te, y_te = task.x_test.to(device), task.y_test.to(device)
    ens = Ensemble(task, copy.deepcopy(plan.module).to(device), plan.layout, engine)
    mask = plan.layout.sphere_mask(device)
    wd = torch.tensor([m.weight_decay for m in group], dtype=torch.float32, device=device)[:, None]
    theta = state.theta.to(device)
    adam = optim.AdamState(state.adam.m.to(device), state.adam.v.to(device), state.adam.t)
    stream = None
    if cfg.batch_size and cfg.batch_size < len(task.x_train):
        stream = BatchStream([derived_seed(m.seed, 3) for m in group], len(task.x_train), cfg.batch_size)
        stream.skip(state.step)
    logged = set(plan.log_steps.tolist())
    log = Log()

    def record(step, th):
        tr_loss, tr_acc = ens.metrics(th, x_tr, y_tr)
        te_loss, te_acc = ens.metrics(th, x_te, y_te)
        nan = torch.full_like(tr_loss, float("nan"))
        log.add(step, {
            "norm": torch.linalg.vector_norm(th, dim=-1),
            "constrained_norm": sphere.constrained_norm(th, mask),
            "train_loss": tr_loss, "test_loss": te_loss,
            "train_acc": tr_acc if task.accuracy is not None else nan,
            "test_acc": te_acc if task.accuracy is not None else nan,
        })

    def checkpoint(step):
        nonlocal log
        if on_checkpoint is not None:
            on_checkpoint(State(step, theta, adam), log)
        log = Log()

    t = state.step
    for idx in batches(stream, cfg.steps - state.step, device):
        if t in logged and not (t == state.step and t > 0):  # a resumed start step is already logged
            record(t, theta)
        if t > state.step and t % cfg.checkpoint_every == 0:
            checkpoint(t)
        if idx is None:
            grad, _ = ens.grad(theta, x_tr, y_tr)
        else:
            grad, _ = ens.grad(theta, x_tr[idx], y_tr[idx], per_member=True)
        theta, adam = optim.adamw_step(theta, grad, adam, cfg.lr, wd)
        t += 1
        if on_progress is not None:
            on_progress(1)
        if should_stop is not None and should_stop():
            if t in logged:
                record(t, theta)
            checkpoint(t)
            return State(t, theta, adam)
    if t in logged:
        record(t, theta)
    checkpoint(t)
    return State(t, theta, adam)


def members_per_chunk(plan: TrainPlan, budget: int = 1 << 30) -> int:
    from .ensemble import members_per_chunk as fit

    return fit(plan.task, plan.layout, plan.config.batch_size, budget)


def resume_state(plan: TrainPlan, group: list[Member], checkpoints: list, start: int) -> State:
    """The state to continue ``group`` from: fresh at step 0, else the stored checkpoints stacked."""
    if start == 0:
        return State.fresh(plan, group)
    theta = torch.as_tensor(np.stack([c[1] for c in checkpoints]))
    m = torch.as_tensor(np.stack([c[2] for c in checkpoints]))
    v = torch.as_tensor(np.stack([c[3] for c in checkpoints]))
    return State(start, theta, optim.AdamState(m, v, checkpoints[0][4]))

"""Trajectory metrics: what free training logs at every logged step, one small file each.

A metric is a :class:`Metric`: a name, a description, units, and a function
that computes it for every member of the ensemble from a :class:`Context`
(the parameters ``theta: [M, P]``, the task, the layout and the worker that
evaluates losses). Registering is decorating that function with
:func:`metric` in a module of this package; every module here is imported, so
a new metric is one new file. From there it reaches the training log, the
file (a dataset with its ``description`` and ``units``), ``landscape info``
and the figures.

A metric returns a tensor ``[M]`` (one series, named like the metric) or, for
a *family*, a dict ``{key: [M]}`` (one series per key, named ``name/key``);
a family declares its keys for a layout with ``keys=``, and ``{key}`` in its
description names each series' key.

May import: ``engine``, ``store``, ``tasks``, ``analysis`` and the base modules.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


def any_task(task) -> str | None:
    return None


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    units: str
    compute: Callable[["Context"], Any]
    keys: Callable[[Any], list[str]] | None = None  # a family's series keys for a layout
    applies: Callable[[Any], str | None] = any_task  # None when it applies to the task, else what it needs
    tasks: str = "any task"  # for `landscape metrics`
    default: bool = True  # logged when --metrics is not given (and it applies)
    always: bool = False  # logged whatever --metrics says (losses, accuracies, norms: tables and analysis read them)
    probe: bool = False  # reads the representation the task's probe names (Context.probe)
    words: dict[str, str] | None = None  # a family's key in words, for its series' descriptions (default: the key)

    def series(self, layout) -> dict[str, tuple[str, str]]:
        """``{series name: (units, description)}`` this metric logs for a model with ``layout``."""
        if self.keys is None:
            return {self.name: (self.units, self.description)}
        return {f"{self.name}/{k}": (self.units, self.description.format(key=(self.words or {}).get(k, k)))
                for k in self.keys(layout)}

    def values(self, ctx: "Context") -> dict[str, Any]:
        """``{series name: [M] tensor}`` at the context's parameters."""
        out = self.compute(ctx)
        if self.keys is None:
            return {self.name: out}
        return {f"{self.name}/{k}": v for k, v in out.items()}


@dataclass
class Context:
    """What a metric may read: the members' parameters, the task, the layout and the worker on the device.

    ``evaluate(split)`` is the full-data ``(loss [M], accuracy [M])`` on ``"train"``
    or ``"test"``, and ``forward(split)`` the members' outputs and probe-layer inputs there
    (``Ensemble.forward``, the probe layer's input with the outputs); each is computed once per context however many metrics ask
    for it, and the losses are read off the same forward pass.
    """

    theta: Any  # [M, P] on the worker's device
    worker: Any  # landscape.engine.worker.Worker
    probe: Any = None  # the tasks.contract.Probe the forward pass captures (when a chosen metric reads it)
    step: int = 0  # the optimizer step the parameters are at
    effective: Any = None  # the runs' effective dynamics (metrics.effective.Dynamics), when effective_rqi is logged
    seeds: Any = None  # each member's seed (random vectors of a metric are drawn from it)
    on_sphere: bool = False  # the members are held on the sphere of their constrained norm (--fix-norm)
    _cache: dict = field(default_factory=dict)

    @property
    def task(self):
        return self.worker.task

    @property
    def layout(self):
        return self.worker.layout

    @property
    def mask(self):
        return self.worker.mask

    def evaluate(self, split: str):
        if split not in self._cache:
            # the loss from the forward pass the metrics share (on every engine: one pass, not two)
            from ..engine.ensemble import member_metrics

            out, y = self.forward(split)[0], self.worker.data[split][1]
            keep = self.worker.keep if split == "train" else None  # members training on part of the split
            with torch.no_grad():
                self._cache[split] = member_metrics(self.task, out, y, keep,
                                                    batched=self.worker.ensemble.engine != "loop")
        return self._cache[split]

    def forward(self, split: str):
        """``(outputs [M, N, ...], what ``probe`` reads [M, N, h] or None)`` of every member on ``split``."""
        key = ("forward", split)
        if key not in self._cache:
            self._cache[key] = self.worker.ensemble.forward(self.theta, self.worker.data[split][0], self.probe)
        return self._cache[key]


REGISTRY: dict[str, Metric] = {}


def metric(name: str, description: str, units: str = "", keys: Callable[[Any], list[str]] | None = None,
           applies: Callable[[Any], str | None] = any_task, tasks: str = "any task", default: bool = True,
           always: bool = False, probe: bool = False, words: dict[str, str] | None = None):
    """Register the decorated ``compute(ctx)`` as the metric ``name``.

    The name becomes a dataset (or, for a family, a group) of every trajectory,
    so it must be new, contain no ``/``, and not be a name the trajectory group
    already uses (``step``, its checkpoints and attributes). ``applies(task)``
    returns None for a task it can be computed on, else what it needs (one
    line); ``tasks`` says the same for the listing; ``probe``: it reads ``ctx.forward(split)[1]``, the
    representation the task's probe names; ``words``: a family's keys in words, put for ``{key}`` in the
    description of each series.
    """
    from ..store.trajectories import RESERVED

    def register(compute):
        if name in REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        if "/" in name or name in RESERVED:
            raise ValueError(f"metric name {name!r} is taken by the trajectory group or contains '/'")
        REGISTRY[name] = Metric(name, description, units, compute, keys, applies, tasks, default, always, probe, words)
        return compute
    return register


@functools.cache
def _load() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")


def registered() -> list[Metric]:
    """Every metric: modules in file-name order, each module's metrics in the order they are defined."""
    _load()
    return list(REGISTRY.values())


def select(task, names: list[str] | None = None) -> list[Metric]:
    """The metrics to log: the ``always`` ones and ``names`` (each checked: known, and applicable to ``task``),
    or, when ``names`` is None, every default metric that applies to ``task``. ``ValueError`` with one line
    otherwise. Registry order is kept."""
    known = {m.name: m for m in registered()}
    if names is None:
        return [m for m in known.values() if (m.default or m.always) and m.applies(task) is None]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--metrics: unknown metric {', '.join(unknown)}; known: {', '.join(known)} "
                         "(landscape metrics lists them)")
    for n in names:
        why = known[n].applies(task)
        if why is not None:
            raise ValueError(f"--metrics: {n} does not apply to task {task.name!r}: it needs {why}")
    return [m for m in known.values() if m.always or m.name in names]


def skipped(task) -> dict[str, str]:
    """``{name: what it needs}`` of the default metrics that do not apply to ``task`` (logged nowhere: the run's
    output and the file list them, so an absent series is never silent)."""
    return {m.name: why for m in registered() if m.default and not m.always
            for why in [m.applies(task)] if why is not None}


def describe_skipped(skipped: dict[str, str]) -> str:
    """One line: ``metrics skipped (...): NAME, NAME (need WHY); ...``, the metrics grouped by what they need."""
    by_need: dict[str, list[str]] = {}
    for name, why in skipped.items():
        by_need.setdefault(why, []).append(name)
    return "metrics skipped (they do not apply to this task): " + "; ".join(
        f"{', '.join(names)} (need{'s' if len(names) == 1 else ''} {why})" for why, names in by_need.items())


def series(layout, chosen: list[Metric] | None = None) -> dict[str, tuple[str, str]]:
    """``{series name: (units, description)}`` of the ``chosen`` metrics (default all) for a model with ``layout``."""
    return {name: meta for m in (registered() if chosen is None else chosen) for name, meta in m.series(layout).items()}


def evaluate(ctx: Context, chosen: list[Metric] | None = None) -> dict[str, Any]:
    """``{series name: [M] tensor}``: the ``chosen`` metrics (default all) at the context's parameters."""
    return {name: v for m in (registered() if chosen is None else chosen) for name, v in m.values(ctx).items()}

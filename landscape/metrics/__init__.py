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
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    units: str
    compute: Callable[["Context"], Any]
    keys: Callable[[Any], list[str]] | None = None  # a family's series keys for a layout

    def series(self, layout) -> dict[str, tuple[str, str]]:
        """``{series name: (units, description)}`` this metric logs for a model with ``layout``."""
        if self.keys is None:
            return {self.name: (self.units, self.description)}
        return {f"{self.name}/{k}": (self.units, self.description.format(key=k)) for k in self.keys(layout)}

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
    or ``"test"``, computed once per context however many metrics ask for it.
    """

    theta: Any  # [M, P] on the worker's device
    worker: Any  # landscape.loop.Worker
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
            self._cache[split] = self.worker.evaluate(self.theta, split)
        return self._cache[split]


REGISTRY: dict[str, Metric] = {}


def metric(name: str, description: str, units: str = "", keys: Callable[[Any], list[str]] | None = None):
    """Register the decorated ``compute(ctx)`` as the metric ``name``.

    The name becomes a dataset (or, for a family, a group) of every trajectory,
    so it must be new, contain no ``/``, and not be a name the trajectory group
    already uses (``step``, its checkpoints and attributes).
    """
    from ..store.trajectories import RESERVED

    def register(compute):
        if name in REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        if "/" in name or name in RESERVED:
            raise ValueError(f"metric name {name!r} is taken by the trajectory group or contains '/'")
        REGISTRY[name] = Metric(name, description, units, compute, keys)
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


def series(layout) -> dict[str, tuple[str, str]]:
    """``{series name: (units, description)}`` of every metric for a model with ``layout``."""
    return {name: meta for m in registered() for name, meta in m.series(layout).items()}


def evaluate(ctx: Context) -> dict[str, Any]:
    """``{series name: [M] tensor}``: every metric at the context's parameters."""
    return {name: v for m in registered() for name, v in m.values(ctx).items()}

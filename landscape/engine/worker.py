"""What the scan's and free training's loops share: the model, the device, the batches, the gradient call.

Both computations optimize an ensemble ``theta: [M, P]`` step after step. This
module holds the parts they have in common, so each loop reads as its own
optimizer logic only:

* :func:`model_of` builds the task's model once and its parameter layout,
  refusing a ``--constrain`` that matches no parameter or an engine that cannot
  run the model;
* :class:`Worker` places the data and the ensemble on the device and answers
  ``grad(theta, batch)`` and ``evaluate(theta, split)``;
* :class:`BatchStream` and :func:`batches` give every member its own
  reproducible minibatch order;
* :func:`chunk_size` and :func:`chunks` split the work into batched pieces.

Seeds come from :func:`derived_seed`, a function of integer keys alone, so a
point or a trajectory sees the same numbers whatever chunk or shard computes it.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import Iterator

import numpy as np
import torch

from . import allocator
from .ensemble import Ensemble, check_engine, engine_of, resolve_engine
from .layout import Layout, flatten, layout_of
from ..tasks import Task, contract, inputs

MEMORY_BUDGET = 1 << 30  # bytes of working memory per chunk when --chunk is not given
BLOCK = 256  # steps of minibatch indices drawn at a time


def derived_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` alone."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def init_params(task: Task, layout: Layout | None, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """A freshly initialized model (torch seeded with ``seed``) and its flat parameters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = task.model()
    return module, (flatten(module, layout) if layout is not None else None)


def model_of(task: Task, constrain: str, engine: str, seed: int,
             groups: list[str] | None = None) -> tuple[torch.nn.Module, Layout, str, str | None]:
    """The task's model (initialized with ``seed``), its layout, the engine that runs it and a note on that choice
    (or None); ``ValueError`` for unusable settings, ``TaskError`` for a model that breaks the task contract
    (``tasks.contract``), both before any step.

    ``groups``: a two-norm scan's globs (first match wins); each must claim a constrained parameter. The engine is
    the one that runs: ``mlp``, ``vmap`` or ``loop`` (``auto`` resolved: ``loop`` where it meets a model ``vmap``
    cannot batch, ``ensemble.resolve_engine``).
    """
    module, _ = init_params(task, None, seed)
    contract.sample(task, module)
    layout = layout_of(module, constrain, groups)
    unmatched = [g for g in (g.strip() for g in constrain.split(",")) if g
                 and not any(fnmatch.fnmatchcase(n, g) for n in layout.names)]
    if not unmatched and groups and not any(layout.constrained):
        raise ValueError(f"--constrain {constrain!r} selects no parameter of the --norms groups "
                         f"({', '.join(map(repr, groups))}); names are: {', '.join(layout.names)}")
    if unmatched or not any(layout.constrained):
        raise ValueError(f"--constrain {', '.join(unmatched) or constrain!r} matches no parameter; "
                         f"names are: {', '.join(layout.names)}")
    for k, glob in enumerate(groups or []):
        if not layout.group_names(k + 1):
            matches = [n for n in layout.names if fnmatch.fnmatchcase(n, glob)]
            taken = [n for n, g in zip(layout.names, layout.group) if 0 < g <= k and n in matches]
            why = (f"only parameters an earlier group already holds ({', '.join(taken)})" if taken else
                   f"no parameter that --constrain {constrain!r} selects" if matches else "no parameter")
            raise ValueError(f"--norms group {k + 1} ({glob!r}) matches {why}; names are: {', '.join(layout.names)}")
    check_engine(module, layout, engine, task)
    engine, note = resolve_engine(task, module, layout, engine)
    return module, layout, engine_of(module, layout, engine, task), note


class BatchStream:
    """Minibatch indices for a set of members: each member reads its own shuffled epochs.

    Member j's stream depends only on its seed (and the size of its training subset), so a point sees the
    same batches whatever chunk or shard it is computed in. ``n_data``: the training examples, or per member
    how many of the first ones it trains on. ``next_block(n)`` returns ``[M, n, B]``.
    """

    def __init__(self, seeds: list[int], n_data: int | list[int], batch: int):
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self.sizes = list(n_data) if isinstance(n_data, (list, tuple)) else [n_data] * len(seeds)
        self.batch = batch
        self.buffers = [np.empty(0, dtype=np.int64) for _ in seeds]

    def _take(self, j: int, need: int) -> np.ndarray:
        buf = self.buffers[j]
        while len(buf) < need:
            buf = np.concatenate([buf, self.rngs[j].permutation(self.sizes[j])])
        self.buffers[j] = buf[need:]
        return buf[:need]

    def skip(self, steps: int) -> None:
        """Advance every member's stream by ``steps`` batches (to resume mid-run)."""
        for j in range(len(self.rngs)):
            self._take(j, steps * self.batch)

    def next_block(self, steps: int) -> np.ndarray:
        out = np.empty((len(self.rngs), steps, self.batch), dtype=np.int64)
        for j in range(len(self.rngs)):
            out[j] = self._take(j, steps * self.batch).reshape(steps, self.batch)
        return out


def batches(stream: BatchStream | None, steps: int, device) -> Iterator[torch.Tensor | None]:
    """Per step: ``[M, B]`` minibatch indices on ``device``, or None for full batch."""
    for start in range(0, steps, BLOCK):
        n = min(BLOCK, steps - start)
        if stream is None:
            yield from [None] * n
        else:
            block = torch.as_tensor(stream.next_block(n), device=device)
            for t in range(n):
                yield block[:, t]


class Worker:
    """A model's ensemble and the task's data on one device: the gradient and the metrics of ``theta``."""

    def __init__(self, task: Task, module: torch.nn.Module, layout: Layout, engine: str = "auto", device="cpu"):
        allocator.keep_freed_memory()
        self.task, self.layout, self.device = task, layout, torch.device(device)
        self.data = {"train": (inputs.to(task.x_train, self.device), task.y_train.to(self.device)),
                     "test": (inputs.to(task.x_test, self.device), task.y_test.to(self.device))}
        self.ensemble = Ensemble(task, copy.deepcopy(module).to(self.device), layout, engine)
        self.mask = layout.sphere_mask(self.device)
        self.counts: list[int] | None = None  # training examples per member, when some train on fewer
        self.keep: torch.Tensor | None = None  # [M, N_train]: 1 on the examples member j trains on

    def train_on(self, counts: list[int]) -> None:
        """Member j trains on the first ``counts[j]`` training examples (its training loss and accuracy are
        read there too); all of them when every count is the whole split."""
        n = self.task.n_train
        if all(c >= n for c in counts):
            self.counts, self.keep = None, None
            return
        self.counts = [min(int(c), n) for c in counts]
        rows = torch.arange(n, device=self.device)
        self.keep = (rows < torch.tensor(self.counts, device=self.device)[:, None]).float()

    def stream(self, seeds: list[int], batch_size: int | None, skip: int = 0) -> BatchStream | None:
        """Each member's minibatch stream (from its own training examples), or None when the batch is the whole
        training set."""
        n = self.task.n_train
        if not batch_size or batch_size >= n:
            return None
        stream = BatchStream(seeds, self.counts or n, batch_size)
        stream.skip(skip)
        return stream

    def batches(self, stream: BatchStream | None, steps: int) -> Iterator[torch.Tensor | None]:
        return batches(stream, steps, self.device)

    def grad(self, theta: torch.Tensor, idx: torch.Tensor | None = None):
        """``(grad [M, P], loss [M])`` of the training loss, full batch or on each member's minibatch ``idx``."""
        x, y = self.data["train"]
        if idx is None:
            return self.ensemble.grad(theta, x, y, keep=self.keep)
        return self.ensemble.grad(theta, inputs.take(x, idx), y[idx], per_member=True)

    def evaluate(self, theta: torch.Tensor, split: str):
        """``(loss [M], accuracy [M])`` on the full ``"train"`` (each member's own examples) or ``"test"`` set."""
        return self.ensemble.metrics(theta, *self.data[split], keep=self.keep if split == "train" else None)


def per_point(task: Task, layout: Layout, batch_size: int | None) -> int:
    """Bytes one member needs: parameters, gradients, Adam moments and the activations of a batch."""
    n = max(batch_size or task.n_train, task.n_test)
    out_dim = task.y_train.reshape(len(task.y_train), -1).shape[1]
    widths = sum(s[0] for s in layout.shapes if len(s) == 2) + out_dim
    return 4 * (10 * layout.size + 4 * n * widths)


def hessian_bytes(task: Task, layout: Layout, lanczos: int) -> int:
    """Bytes one member needs beyond :func:`per_point` for its Hessian's spectrum (``landscape.engine.curvature``):
    the Lanczos basis of ``lanczos`` vectors, two more, and the full-data gradient graph the products run through."""
    return 4 * (lanczos + 2) * layout.size + per_point(task, layout, None)


def check_curvature(task: Task, module: torch.nn.Module, layout: Layout, engine: str, theta: torch.Tensor,
                    flag: str) -> None:
    """``ValueError`` (one line, naming ``flag``) where the curvature of the model's loss at ``theta [P]`` would be
    wrong (``curvature.check_symmetric``, on its first 8 training examples, before any step)."""
    from . import curvature

    ensemble = Ensemble(task, copy.deepcopy(module), layout, engine)
    try:
        curvature.check_symmetric(ensemble, theta[None], inputs.take(task.x_train, slice(0, 8)), task.y_train[:8])
    except ValueError as e:
        raise ValueError(f"{flag}: {e}") from None


def chunk_size(task: Task, layout: Layout, batch_size: int | None, budget: int = MEMORY_BUDGET, extra: int = 0) -> int:
    """How many members fit in ``budget`` bytes: :func:`per_point`, and ``extra`` bytes each."""
    return int(max(1, budget // (per_point(task, layout, batch_size) + extra)))


def chunks(items, size: int) -> list:
    """Consecutive pieces of at most ``size`` items."""
    return [items[i:i + size] for i in range(0, len(items), size)]

"""``/trajectories/NAME``: free-training runs, their logged series and their checkpoints.

A trajectory group holds the ``step`` dimension scale, one 1-D dataset per
logged series (named as the metric that produced it, ``landscape.metrics``; a
family ``name/key`` is a subgroup ``name`` with one dataset per key) and two
checkpoint slots. Which series exist is read from the file, so files written
before a metric existed read as they are: that series is absent.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .train_state import TrainState
from .phases import drop_phases
from ..status import Status
from ..errors import one_line
from .durable import commit
from .verify import CHECKPOINT_ARRAYS, checkpoint_ok, logs_ok
from .format import (
    StoreError, attrs_of, check_task, damaged_as_error, data_fingerprint, describe_difference, drop_analysis,
    open_file, reset_scales, root_or_check, set_root_config, to_json
)

CHECKPOINT_SLOTS = ("checkpoint_a", "checkpoint_b")
DESCRIPTION = "training runs (free AdamW, or norm-constrained with fix_norm), one group per trajectory"
ATTRIBUTES = ("weight_decay", "init_scale", "seed", "lr", "train_frac", "group_lr", "group_weight_decay",
              "train_examples", "betas", "warmup", "schedule", "fix_norm", "steps",
              "batch_size", "batch_size_description", "config", "identity", "classification", "checkpoint_step",
              "status", "description")
FREE = ("free training with AdamW (decoupled weight decay) from the default initialization multiplied by "
        "init_scale on the constrained parameters")
FIXED = ("norm-constrained training (--fix-norm): Riemannian Adam on the sphere of the initial norm of the "
         "constrained parameters (the default initialization multiplied by init_scale); weight decay acts on the "
         "free parameters only")
GROUP_RATES = ("group_lr", "group_weight_decay")  # per member, stored only where --group sets them
RESERVED = {"name", "series", "step", *CHECKPOINT_SLOTS, *ATTRIBUTES}  # not usable as series names


def series_names(g: h5py.Group) -> list[str]:
    """The logged series of a trajectory group: every dataset along ``step`` (``family/key`` inside subgroups)."""
    names = []  # getclass asks for the kind without opening each object (a third of the time)
    for key in g.keys():
        if key == "step" or key in CHECKPOINT_SLOTS:
            continue
        if g.get(key, getclass=True) is h5py.Dataset:
            names.append(key)
        else:
            sub = g[key]
            names += [f"{key}/{k}" for k in sub.keys() if sub.get(k, getclass=True) is h5py.Dataset]
    return names


def _new_series(g: h5py.Group, name: str, units: str, description: str, length: int = 0) -> h5py.Dataset:
    ds = g.create_dataset(name, shape=(length,), maxshape=(None,), dtype=np.float64, chunks=(256,),
                          fillvalue=np.nan)
    ds.attrs["description"] = description
    if units:
        ds.attrs["units"] = units
    ds.dims[0].attach_scale(g["step"])
    return ds


def attach_scales(g: h5py.Group) -> None:
    """Make ``step`` the dimension scale of every series of a trajectory group."""
    reset_scales(g)
    g["step"].make_scale("step")
    for name in series_names(g):
        g[name].dims[0].attach_scale(g["step"])


def ident_defaults(config) -> dict[str, Any]:
    """The identity of a default config: the values of settings a file written before them was run with."""
    return json.loads(to_json(type(config)().identity()))


def member_identity(ident: dict[str, Any], member) -> dict[str, Any]:
    """A trajectory's identity: the sweep's shared settings and the member's own learning rate and training
    share (files written before these were per member hold the run's ``lr`` and no ``train_frac``: 1)."""
    groups = {k: getattr(member, k) for k in GROUP_RATES if getattr(member, k) is not None}
    return {**ident, "lr": member.lr, "train_frac": member.train_frac, **groups}


def _stored_identity(g: h5py.Group, config, ident: dict[str, Any]) -> dict[str, Any]:
    stored = {**ident_defaults(config), "train_frac": 1.0, **json.loads(g.attrs["identity"])}
    if isinstance(stored.get("lr"), list):  # the sweep's list, stored by a version that kept it shared
        stored["lr"] = float(g.attrs["lr"])
    return {k: stored.get(k) for k in (*ident, *(k for k in GROUP_RATES if k in stored and k not in ident))}


def prepare_trajectories(path: str | Path, config, plan, overwrite: bool = False,
                         also: dict[str, Any] | None = None,
                         repaired: list | None = None) -> dict[str, TrainState | None]:
    """Create or reopen the trajectory groups of ``plan``; return ``{name: one-row TrainState or None}``.

    A trajectory that exists with other settings is refused unless ``overwrite``
    (which replaces that trajectory only). Series logged after the last
    checkpoint are dropped, since the run resumes from that checkpoint. ``also``: further commands' configs for
    the root ``config`` attribute (``{command: config}``). A checkpoint found incomplete is replaced by an earlier
    one, or the trajectory starts over; ``repaired`` gets ``(name, step)`` for each.
    """
    path = Path(path)
    fingerprint = data_fingerprint(plan.task)
    ident = json.loads(to_json(config.identity()))
    if path.exists():  # (with overwrite, a trajectory damaged in its shapes is replaced below)
        with open_file(path, "r", shapes=not overwrite) as f, damaged_as_error(path):
            check_task(f, path, plan.task, fingerprint)
            for m in plan.members:
                key = f"trajectories/{m.name}"
                if key in f and not overwrite:
                    ours = member_identity(ident, m)
                    stored = _stored_identity(f[key], config, ours)
                    if stored != ours:
                        raise StoreError(f"{path}: trajectory {m.name} exists with other settings "
                                         f"({describe_difference(stored, ours)}); use --overwrite to replace it, "
                                         "or another --out")
    states = {}
    with commit(path) as f:
        root_or_check(f, path, plan.task, fingerprint)
        set_root_config(f, "train", config, plan.task.options, path)
        for command, other in (also or {}).items():
            set_root_config(f, command, other, plan.task.options, path)
        top = f.require_group("trajectories")
        top.attrs["description"] = DESCRIPTION
        skipped = getattr(plan, "skipped", None)
        if skipped is not None:  # default metrics that do not apply to the task: listed, never silently absent
            top.attrs["skipped_metrics"] = to_json(skipped)
            top.attrs["skipped_metrics_description"] = ("JSON {metric: what it needs}: default metrics not "
                                                       "logged because they do not apply to the task")
        for m in plan.members:
            if m.name in top and overwrite:
                del top[m.name]
            if m.name in top:
                try:
                    states[m.name] = _reopen(top[m.name], plan.layout.size, repaired)
                except (KeyError, ValueError, TypeError) as e:  # not OSError: a failed write is write_errors' line
                    raise StoreError(f"{path}: damaged or incomplete landscape file: trajectory {m.name} "
                                     f"({type(e).__name__}: {one_line(e)}); use --overwrite to replace it") from None
            else:
                _create(top, m, config, plan, member_identity(ident, m))
                states[m.name] = None
    return states


def _create(top: h5py.Group, member, config, plan, ident: dict) -> None:
    g = top.create_group(member.name)
    g.attrs["description"] = FIXED if member.fix_norm else FREE
    g.attrs["weight_decay"] = member.weight_decay
    g.attrs["init_scale"] = member.init_scale
    g.attrs["seed"] = member.seed
    g.attrs["lr"] = member.lr
    g.attrs["train_frac"] = member.train_frac
    for key, value in getattr(plan, "effective", {}).get(member.name, {}).items():  # the effective theory's
        g.attrs[key] = value
    for key in GROUP_RATES:  # --group's own rates, where set
        if getattr(member, key) is not None:
            g.attrs[key] = getattr(member, key)
    g.attrs["train_examples"] = member.train_count(plan.task.n_train)
    g.attrs["betas"] = np.asarray(config.betas, dtype=np.float64)
    g.attrs["warmup"] = config.warmup
    g.attrs["schedule"] = config.schedule
    g.attrs["fix_norm"] = member.fix_norm
    g.attrs["steps"] = config.steps
    g.attrs["batch_size"] = config.batch_size or 0
    g.attrs["batch_size_description"] = "0 = full batch"
    g.attrs["config"] = to_json({**dataclasses.asdict(config), "task_options": plan.task.options})
    g.attrs["identity"] = to_json(ident)
    g.attrs["classification"] = plan.task.classification
    g.attrs["checkpoint_step"] = -1
    g.attrs["status"] = Status.RUNNING.label
    step = g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
    step.attrs["long_name"] = "optimizer step"
    step.attrs["units"] = "step"
    step.make_scale("step")
    for name, (units, desc) in plan.series.items():
        _new_series(g, name, units, desc)


def _reopen(g: h5py.Group, n_params: int, repaired: list | None = None) -> TrainState | None:
    """The last checkpoint of a trajectory (or None), dropping series logged after it.

    The checkpoint and the rows before it are checked (``verify``): when the current checkpoint is incomplete the
    run goes on from the other slot's earlier one, and when neither holds a whole state, or the logged rows are
    not whole, from the start; ``repaired`` gets ``(name, step it goes on from)``.
    """
    current = int(g.attrs["checkpoint_step"])
    diverged = g.attrs["status"] == Status.DIVERGED.label
    slots = sorted((int(g[s].attrs["step"]), s) for s in CHECKPOINT_SLOTS if s in g and "step" in g[s].attrs)
    last = min(current, int(g.attrs["steps"])) if "steps" in g.attrs else current  # a step within the run
    usable = [(step, s) for step, s in slots if 0 <= step <= last and checkpoint_ok(g[s], n_params, diverged)]
    step, slot = usable[-1] if usable else (-1, None)
    keep = int(np.searchsorted(g["step"][()], step, side="right")) if step >= 0 else 0
    for name in ("step", *series_names(g)):
        g[name].resize((min(keep, g[name].shape[0]),))
    if step >= 0 and not logs_ok(g, series_names(g), step, diverged):
        step, slot = -1, None
    if step != current:
        if repaired is not None:
            repaired.append((g.name.rsplit("/", 1)[-1], max(step, 0)))
        g.attrs["checkpoint_step"] = step
        g.attrs["status"] = Status.RUNNING.label
    if step < 0:
        for name in ("step", *series_names(g)):
            g[name].resize((0,))
        return None
    c = g[slot]
    return TrainState(step, *(c[k][()][None] for k in CHECKPOINT_ARRAYS), int(c.attrs["adam_t"]))


def write_trajectories(path: str | Path, names: list[str], state: TrainState, log_steps: list[int],
                       series: dict[str, np.ndarray], done: bool, meta: dict[str, tuple[str, str]] | None = None,
                       diverged: list[bool] | None = None) -> None:
    """Append logged rows (``series[name]: [M, n]``) and store ``state`` as each named trajectory's checkpoint.

    Row ``j`` of the state and of every series belongs to ``names[j]``. The
    whole change is one atomic commit. A member in ``diverged`` (its
    parameters or losses stopped being finite), or one that diverged before,
    is marked ``diverged``; the others ``done`` when ``done``, else ``running``.
    A series the group does not hold yet (a file written before its metric
    existed) is created, NaN for the rows logged before; ``meta`` gives its
    units and description.
    """
    state = state.numpy()
    diverged = diverged or [False] * len(names)
    with commit(path) as f:
        drop_analysis(f)
        drop_phases(f)
        for j, name in enumerate(names):
            g = f["trajectories"][name]
            n0 = g["step"].shape[0]
            n1 = n0 + len(log_steps)
            held = series_names(g)
            present = set(held)
            for key in [k for k in series if k not in present]:
                units, desc = (meta or {}).get(key, ("", key))
                _new_series(g, key, units, desc, n0)
                held.append(key)
            for key in ("step", *held):
                g[key].resize((n1,))
            g["step"][n0:n1] = log_steps
            for key, values in series.items():
                g[key][n0:n1] = values[j]
            # write the slot that does not hold the current checkpoint: a kill mid-write leaves that one intact
            current = int(g.attrs["checkpoint_step"])
            slot = next(n for n in CHECKPOINT_SLOTS if n not in g or int(g[n].attrs["step"]) != current)
            c = g.require_group(slot)
            c.attrs["description"] = ("state to resume from: parameters and AdamW moments after 'step' steps; "
                                      "the slot whose step equals the trajectory's checkpoint_step is current")
            c.attrs["step"] = -1
            for key in CHECKPOINT_ARRAYS:
                value = getattr(state, key)[j]
                if key in c and c[key].shape == value.shape:
                    c[key][...] = value
                else:  # new, or found damaged on resume (verify.checkpoint_ok)
                    if key in c:
                        del c[key]
                    c.create_dataset(key, data=value)
            c.attrs["adam_t"] = state.adam_t
            c.attrs["step"] = state.step
        f.flush()
        for name, bad in zip(names, diverged):
            g = f["trajectories"][name]
            g.attrs["checkpoint_step"] = state.step
            if bad or g.attrs["status"] == Status.DIVERGED.label:
                g.attrs["status"] = Status.DIVERGED.label
            else:
                g.attrs["status"] = (Status.DONE if done else Status.RUNNING).label
        f.flush()


def _read(name: str, g: h5py.Group) -> dict[str, Any]:
    t = {"name": name, **attrs_of(g, skip=("config", "identity", "description"))}
    t["config"] = json.loads(g.attrs["config"])
    t["step"] = g["step"][()]
    t["series"] = series_names(g)
    for key in t["series"]:
        t[key] = g[key][()]
    return t


def final_params(path: str | Path, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """A trajectory's parameters at its last checkpoint ``[P]`` and its config; ``StoreError`` (one line) when
    the file has no such trajectory or it has no checkpoint yet."""
    with open_file(path, "r") as f, damaged_as_error(path):
        top = f.get("trajectories")
        if top is None or name not in top:
            known = ", ".join(top) if top is not None else ""
            raise StoreError(f"{path}: no trajectory {name!r}" + (f"; it has: {known}" if known else
                                                                   "; it holds no trajectories"))
        g = top[name]
        step = int(g.attrs["checkpoint_step"])
        for slot in CHECKPOINT_SLOTS:
            if step >= 0 and slot in g and int(g[slot].attrs["step"]) == step:
                return g[slot]["theta"][()], json.loads(g.attrs["config"])
        raise StoreError(f"{path}: trajectory {name!r} has no checkpoint yet (train it first)")


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """Every trajectory as a dict of its attributes and series (numpy arrays); ``series`` lists the series."""
    with open_file(path, "r") as f, damaged_as_error(path):
        if "trajectories" not in f:
            return []
        return [_read(name, g) for name, g in f["trajectories"].items()]


def series_meta(path: str | Path) -> dict[str, tuple[str, str]]:
    """``{series: (units, description)}`` over every trajectory of the file, for tables and figures."""
    out = {}
    with open_file(path, "r") as f, damaged_as_error(path):
        for g in (f["trajectories"].values() if "trajectories" in f else []):
            for key in series_names(g):
                ds = g[key]
                out.setdefault(key, (str(ds.attrs.get("units", "")), str(ds.attrs.get("description", key))))
    return out


def finished(g: h5py.Group) -> tuple[bool, int]:
    """``(finished, checkpoint step)`` of a trajectory group (done or diverged): how far it got, to pick the best
    copy."""
    return Status.from_label(str(g.attrs["status"])) in (Status.DONE, Status.DIVERGED), int(g.attrs["checkpoint_step"])


def same_results(a: h5py.Group, b: h5py.Group) -> bool:
    """Whether two copies of a trajectory logged the same values (in the series both hold)."""
    keys = ["step", *sorted(set(series_names(a)) & set(series_names(b)))]
    return all(np.array_equal(a[k][()], b[k][()], equal_nan=True) for k in keys)


def copy_trajectory(g: h5py.Group, top: h5py.Group, name: str) -> None:
    """Copy one trajectory group into ``top`` (its dimension scales rebuilt)."""
    g.file.copy(g, top, name=name)
    attach_scales(top[name])


def drop_unfinished(path: str | Path, names: list[str]) -> None:
    """Delete the trajectories ``names`` that hold nothing to resume from (a failed run's own, unfinished and
    without a checkpoint past step 0), so that a corrected rerun with other settings is not refused; finished and
    checkpointed ones stay (the same command resumes them). One commit; nothing to do leaves the file untouched."""
    path = Path(path)
    if not path.exists():
        return
    with open_file(path, "r") as f:
        top = f.get("trajectories")
        gone = [n for n in names if top is not None and n in top and finished(top[n]) in ((False, -1), (False, 0))]
    if gone:
        with commit(path) as f:
            for n in gone:
                del f["trajectories"][n]

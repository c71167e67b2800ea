"""The HDF5 file format: create, resume, write chunk by chunk, read and describe.

Layout (format ``landscape``, version 1; see ``docs/format.md``)::

    /                       attrs: format, format_version, landscape_version, torch_version,
                                   created, task, task_options (JSON), data_fingerprint
    /scan                   attrs: config (JSON), w0, method, description
      alpha   [K]           dimension scale: norm in units of w0
      norm    [K]           dimension scale: L2 norm of the constrained parameters
      restart [R]           dimension scale
      train_loss, test_loss, train_acc, test_acc, grad_norm   [K, R] float64, NaN = not computed
      steps   [K, R] int64  optimizer steps run (-1 = not computed)
      status  [K, R] enum   pending / done / diverged
      history/step [T]      (with --history) steps at which losses were recorded
      history/train_loss, history/test_loss  [K, R, T]
      params  [K, R, P]     (with --save-params) constrained minimizers, flat; attrs names, shapes
      constrained [P]       (with --save-params) 1 where a coordinate is norm-constrained

Every write opens the file, writes, flushes and closes it, so a killed run
keeps each finished chunk. Status is written last: a point is only marked done
once all its values are on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

LOCK_WAIT = 120.0  # seconds to wait for another process holding the file
FORMAT = "landscape"
FORMAT_VERSION = 1
STATUS_ENUM = {"pending": 0, "done": 1, "diverged": 2}
STATUS_DTYPE = h5py.enum_dtype(STATUS_ENUM, basetype="i1")
METRICS = {
    "train_loss": "training loss at the final constrained iterate",
    "test_loss": "test loss at the final constrained iterate (not the best seen during training)",
    "train_acc": "training accuracy at the final iterate (NaN for regression tasks)",
    "test_acc": "test accuracy at the final iterate (NaN for regression tasks)",
    "grad_norm": "L2 norm of the full-batch training-loss gradient projected on the sphere's tangent space "
                 "(a stationarity certificate: 0 at a constrained critical point)",
}


class StoreError(ValueError):
    """The file cannot be used as asked (unreadable, foreign, or a different experiment)."""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_jsonable)


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def data_fingerprint(task) -> str:
    """SHA-256 over the task's train and test arrays: the same data gives the same string."""
    h = hashlib.sha256()
    for t in (task.x_train, task.y_train, task.x_test, task.y_test):
        a = t.detach().cpu().contiguous().numpy()
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


@contextlib.contextmanager
def _damaged_as_error(path):
    """Turn errors from reading a damaged or incomplete file into one ``StoreError`` line."""
    try:
        yield
    except StoreError:
        raise
    except (KeyError, OSError, ValueError, TypeError, AttributeError) as e:
        raise StoreError(f"{path}: damaged or incomplete landscape file ({type(e).__name__}: {_one_line(e)})") from None


def open_file(path: str | Path, mode: str = "r") -> h5py.File:
    """Open a landscape file, turning unreadable or foreign files into ``StoreError``."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a file")
    if mode == "r" and not path.exists():
        raise StoreError(f"{path}: no such file")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: directory {str(path.parent)!r} does not exist")
    deadline = time.monotonic() + LOCK_WAIT
    delay = 0.02
    while True:
        try:
            f = h5py.File(path, mode)
            break
        except OSError as e:
            # another process (a reader such as `landscape info`, or a writer) holds the file: wait for it
            locked = "unable to lock file" in str(e).lower()
            if locked and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(2 * delay, 0.5)
                continue
            if locked:
                raise StoreError(f"{path}: still locked by another process after {LOCK_WAIT:.0f} s") from None
            raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {_one_line(e)}") from None
    if f.attrs.get("format") != FORMAT and len(f.keys()) + len(f.attrs) > 0:
        f.close()
        raise StoreError(f"{path}: an HDF5 file, but not one written by landscape (no format='{FORMAT}' attribute)")
    version = f.attrs.get("format_version", FORMAT_VERSION)
    if int(version) > FORMAT_VERSION:
        f.close()
        raise StoreError(f"{path}: format version {version} is newer than this landscape reads ({FORMAT_VERSION})")
    return f


def _root_attrs(f: h5py.File, task, fingerprint: str) -> None:
    import torch

    from . import __version__

    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["landscape_version"] = __version__
    f.attrs["torch_version"] = str(torch.__version__)
    f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    f.attrs["task"] = task.name
    f.attrs["task_options"] = _json(task.options)
    f.attrs["data_fingerprint"] = fingerprint


def check_task(f: h5py.File, path, task, fingerprint: str) -> None:
    """Refuse a file whose task or data differ from ``task``."""
    if "task" not in f.attrs:
        return
    stored = (f.attrs["task"], json.loads(f.attrs["task_options"]))
    ours = (task.name, json.loads(_json(task.options)))
    if stored != ours:
        raise StoreError(f"{path}: holds task {stored[0]} {stored[1]}, not {ours[0]} {ours[1]}; use another --out")
    if f.attrs.get("data_fingerprint") != fingerprint:
        raise StoreError(f"{path}: holds the same task but different data (data fingerprint differs); use another --out")


def _short(value) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} values {value[0]:g}..{value[-1]:g}"
    return repr(value)


def _diff(stored: dict, ours: dict) -> str:
    keys = sorted(set(stored) | set(ours))
    diffs = [f"{k}: {_short(stored.get(k))} in file vs {_short(ours.get(k))} now"
             for k in keys if stored.get(k) != ours.get(k)]
    return "; ".join(diffs)


def scan_identity(config, plan) -> dict:
    """What must match for a file's scan to be resumed: the config with the grid resolved."""
    ident = config.identity()
    ident.pop("norms")
    ident.pop("absolute")
    ident["alpha"] = [float(f"{a:.12g}") for a in plan.alpha]
    return json.loads(_json(ident))


def prepare_scan(path: str | Path, config, plan, overwrite: bool = False,
                 shard: tuple[int, int] | None = None) -> np.ndarray:
    """Create or reopen ``path`` for ``plan``; return the point indices still to compute.

    An existing file with the same scan is resumed (only pending points are
    returned). A file with another scan, task or data is refused unless
    ``overwrite``, which replaces the whole file -- and only a landscape file:
    anything else at ``path`` is never deleted. With ``shard = (i, n)`` the file
    is a shard file and only points ``i, i + n, i + 2n, ...`` are returned.
    """
    mine = np.arange(plan.n_points) if shard is None else np.arange(shard[0], plan.n_points, shard[1])
    path = Path(path)
    fingerprint = data_fingerprint(plan.task)
    ident = scan_identity(config, plan)
    if path.exists():
        with open_file(path, "r") as f, _damaged_as_error(path):
            if overwrite:
                pass  # opening it proved it is a landscape file; it is replaced below
            else:
                check_task(f, path, plan.task, fingerprint)
                if "scan" in f:
                    stored = json.loads(f["scan"].attrs["identity"])
                    if stored != ident:
                        raise StoreError(f"{path}: holds a scan with another configuration ({_diff(stored, ident)}); "
                                         "use --overwrite to replace the file, or another --out")
                    stored_shard = tuple(int(v) for v in f["scan"].attrs.get("shard", ()))
                    if stored_shard != (tuple(shard) if shard else ()):
                        raise StoreError(f"{path}: was written as shard {stored_shard or 'none'}, not "
                                         f"{tuple(shard) if shard else 'none'}; use another --out")
                    status = f["scan/status"][()].astype(np.int8).ravel()
                    return mine[status[mine] == STATUS_ENUM["pending"]]
    if path.exists() and not overwrite:
        with open_file(path, "a") as f:
            _set_root_config(f, "scan", config, plan)
            _create_scan(f, config, plan, ident, shard)
        return mine
    # a new file (or a replacement) is built beside the target and moved into place when complete
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open_file(tmp, "w") as f:
            _root_attrs(f, plan.task, fingerprint)
            _set_root_config(f, "scan", config, plan)
            _create_scan(f, config, plan, ident, shard)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return mine


def _set_root_config(f: h5py.File, command: str, config, plan) -> None:
    """Root attribute ``config``: JSON object with the full resolved configuration of each command."""
    configs = json.loads(f.attrs["config"]) if "config" in f.attrs else {}
    configs[command] = {**dataclasses.asdict(config), "task_options": plan.task.options}
    f.attrs["config"] = _json(configs)


def _create_scan(f: h5py.File, config, plan, ident: dict, shard=None) -> None:
    K, R = len(plan.norm), config.restarts
    g = f.create_group("scan")
    if shard is not None:
        g.attrs["shard"] = np.array(shard[:2], dtype=np.int64)
        g.attrs["shard_description"] = ("this file is shard [index, count] of a larger scan: it computes the points "
                                        "k * R + r = index, index + count, ...; `landscape merge` joins the shards")
    g.attrs["description"] = ("Reduced loss landscape: for each norm, the training loss minimized over parameters "
                              "whose constrained part has that L2 norm, with train and test metrics read at the minimizer.")
    g.attrs["config"] = _json({**dataclasses.asdict(config), "task_options": plan.task.options})
    g.attrs["identity"] = _json(ident)
    g.attrs["w0"] = plan.w0
    g.attrs["w0_description"] = "L2 norm of the constrained parameters at the default initialization (restart 0)"
    g.attrs["method"] = config.method
    g.attrs["constrained_parameters"] = _json([n for n, c in zip(plan.layout.names, plan.layout.constrained) if c])
    g.attrs["classification"] = plan.task.accuracy is not None

    alpha = g.create_dataset("alpha", data=np.asarray(plan.alpha, dtype=np.float64))
    alpha.attrs["units"] = "multiples of w0"
    alpha.attrs["long_name"] = "norm / w0"
    norm = g.create_dataset("norm", data=np.asarray(plan.norm, dtype=np.float64))
    norm.attrs["units"] = "L2 norm"
    norm.attrs["long_name"] = "L2 norm of the constrained parameters"
    restart = g.create_dataset("restart", data=np.arange(R, dtype=np.int64))
    restart.attrs["long_name"] = "independent initialization index"
    for name, desc in METRICS.items():
        ds = g.create_dataset(name, shape=(K, R), dtype=np.float64, fillvalue=np.nan)
        ds.attrs["description"] = desc
    ds = g.create_dataset("steps", shape=(K, R), dtype=np.int64, fillvalue=-1)
    ds.attrs["description"] = "optimizer steps run (up to divergence for diverged points; -1 = not computed)"
    ds = g.create_dataset("status", shape=(K, R), dtype=STATUS_DTYPE, fillvalue=0)
    ds.attrs["description"] = "pending = not computed yet, done = finished, diverged = a loss became NaN or inf"
    if config.history:
        from .scan import history_steps

        h = g.create_group("history")
        st = h.create_dataset("step", data=history_steps(config))
        st.attrs["long_name"] = "optimizer step"
        for name in ("train_loss", "test_loss"):
            ds = h.create_dataset(name, shape=(K, R, len(st)), dtype=np.float64, fillvalue=np.nan)
            ds.attrs["description"] = f"full-data {name.replace('_', ' ')} recorded during the constrained optimization"
    if config.save_params:
        P = plan.layout.size
        ds = g.create_dataset("params", shape=(K, R, P), dtype=np.float32, fillvalue=np.nan,
                              chunks=(1, 1, P))
        ds.attrs["description"] = "constrained minimizers, flattened in the order of the 'names' attribute"
        ds.attrs["names"] = _json(list(plan.layout.names))
        ds.attrs["shapes"] = _json([list(s) for s in plan.layout.shapes])
        g.create_dataset("constrained", data=plan.layout.mask().numpy().astype(np.int8))
    attach_scan_scales(g)


def _reset_scales(g: h5py.Group) -> None:
    """Drop dimension-scale bookkeeping (stale after copying a group between files)."""
    for ds in g.values():
        if isinstance(ds, h5py.Group):
            _reset_scales(ds)
            continue
        for key in ("DIMENSION_LIST", "REFERENCE_LIST", "DIMENSION_LABELS"):
            if key in ds.attrs:
                del ds.attrs[key]


def attach_scan_scales(g: h5py.Group) -> None:
    """Make alpha, norm, restart (and history/step) dimension scales and attach them to every dataset."""
    _reset_scales(g)
    alpha, norm, restart = g["alpha"], g["norm"], g["restart"]
    for ds in (alpha, norm, restart):
        ds.make_scale(ds.name.rsplit("/", 1)[1])
    step = None
    if "history" in g:
        step = g["history/step"]
        step.make_scale("step")
    targets = [g[n] for n in (*METRICS, "steps", "status", "params") if n in g]
    if step is not None:
        targets += [g["history"][n] for n in ("train_loss", "test_loss")]
    for ds in targets:
        ds.dims[0].attach_scale(norm)
        ds.dims[0].attach_scale(alpha)
        ds.dims[1].attach_scale(restart)
        if ds.ndim == 3 and step is not None and ds.name.startswith(g.name + "/history"):
            ds.dims[2].attach_scale(step)


def attach_trajectory_scales(g: h5py.Group) -> None:
    """Make ``step`` the dimension scale of every series of a trajectory group."""
    _reset_scales(g)
    g["step"].make_scale("step")
    for name in SERIES:
        g[name].dims[0].attach_scale(g["step"])


def write_chunk(path: str | Path, result, restarts: int) -> None:
    """Store one chunk of results; statuses are written last, then the file is closed."""
    ks, rs = np.divmod(result.index, restarts)
    with open_file(path, "r+") as f:
        if "analysis" in f:  # new results make a stored analysis stale
            del f["analysis"]
        g = f["scan"]
        for name in (*METRICS, "steps"):
            arr = g[name][()]
            arr[ks, rs] = getattr(result, name)
            g[name][...] = arr
        if result.history is not None and "history" in g:
            for name, values in zip(("train_loss", "test_loss"), result.history):
                for j, (k, r) in enumerate(zip(ks, rs)):
                    g["history"][name][k, r, :] = values[j]
        if result.params is not None and "params" in g:
            for j, (k, r) in enumerate(zip(ks, rs)):
                g["params"][k, r, :] = result.params[j]
        f.flush()
        status = g["status"][()]
        status[ks, rs] = result.status
        g["status"][...] = status
        f.flush()


def read_scan(path: str | Path) -> dict[str, Any] | None:
    """Everything under ``/scan`` as numpy arrays and plain values, or None if the file has no scan."""
    with open_file(path, "r") as f, _damaged_as_error(path):
        if "scan" not in f:
            return None
        g = f["scan"]
        out = {k: g[k][()] for k in ("alpha", "norm", *METRICS, "steps")}
        out["status"] = g["status"][()].astype(np.int8)
        out["w0"] = float(g.attrs["w0"])
        out["config"] = json.loads(g.attrs["config"])
        out["classification"] = bool(g.attrs["classification"])
        out["task"] = str(f.attrs["task"])
        if "history" in g:
            out["history"] = {k: g["history"][k][()] for k in ("step", "train_loss", "test_loss")}
        return out


def describe(path: str | Path) -> dict[str, Any]:
    """Root attributes and the groups present, for ``landscape info``."""
    with open_file(path, "r") as f, _damaged_as_error(path):
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        return {"attrs": attrs, "groups": list(f.keys())}


# ---------------------------------------------------------------- trajectories

SERIES = {
    "norm": ("L2 norm", "L2 norm of all trainable parameters"),
    "constrained_norm": ("L2 norm", "L2 norm of the constrained parameter set (the scan's norm axis)"),
    "train_loss": ("", "full training-set loss"),
    "test_loss": ("", "full test-set loss"),
    "train_acc": ("fraction", "training accuracy (NaN for regression tasks)"),
    "test_acc": ("fraction", "test accuracy (NaN for regression tasks)"),
}


def _root_or_check(f: h5py.File, path, task, fingerprint: str) -> None:
    if "format" in f.attrs:
        check_task(f, path, task, fingerprint)
    else:
        _root_attrs(f, task, fingerprint)


def prepare_trajectories(path: str | Path, config, plan, overwrite: bool = False) -> dict[str, Any]:
    """Create or reopen the trajectory groups of ``plan``; return ``{name: checkpoint or None}``.

    A checkpoint is ``(step, theta, m, v, t)`` as numpy arrays. A trajectory that
    exists with other settings is refused unless ``overwrite`` (which replaces
    that trajectory only). Series logged after the last checkpoint are dropped,
    since the run resumes from that checkpoint.
    """
    path = Path(path)
    fingerprint = data_fingerprint(plan.task)
    ident = json.loads(_json(config.identity()))
    if path.exists():
        with open_file(path, "r") as f, _damaged_as_error(path):
            check_task(f, path, plan.task, fingerprint)
            for m in plan.members:
                key = f"trajectories/{m.name}"
                if key in f and not overwrite:
                    stored = json.loads(f[key].attrs["identity"])
                    if stored != ident:
                        raise StoreError(f"{path}: trajectory {m.name} exists with other settings "
                                         f"({_diff(stored, ident)}); use --overwrite to replace it, or another --out")
    new = not path.exists()
    states = {}
    try:
        with open_file(path, "a") as f:
            _root_or_check(f, path, plan.task, fingerprint)
            _set_root_config(f, "train", config, plan)
            top = f.require_group("trajectories")
            top.attrs["description"] = "free-training runs (AdamW), one group per trajectory"
            for m in plan.members:
                if m.name in top and overwrite:
                    del top[m.name]
                if m.name in top:
                    states[m.name] = _reopen(top[m.name])
                else:
                    _create_trajectory(top, m, config, plan, ident)
                    states[m.name] = None
    except BaseException:
        if new:
            path.unlink(missing_ok=True)
        raise
    return states


def _create_trajectory(top: h5py.Group, member, config, plan, ident: dict) -> None:
    g = top.create_group(member.name)
    g.attrs["description"] = ("free training with AdamW (decoupled weight decay) from the default initialization "
                              "multiplied by init_scale on the constrained parameters")
    g.attrs["weight_decay"] = member.weight_decay
    g.attrs["init_scale"] = member.init_scale
    g.attrs["seed"] = member.seed
    g.attrs["lr"] = config.lr
    g.attrs["steps"] = config.steps
    g.attrs["batch_size"] = config.batch_size or 0
    g.attrs["batch_size_description"] = "0 = full batch"
    g.attrs["config"] = _json({**dataclasses.asdict(config), "task_options": plan.task.options})
    g.attrs["identity"] = _json(ident)
    g.attrs["classification"] = plan.task.accuracy is not None
    g.attrs["checkpoint_step"] = -1
    g.attrs["status"] = "running"
    step = g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
    step.attrs["long_name"] = "optimizer step"
    for name, (units, desc) in SERIES.items():
        ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,))
        ds.attrs["description"] = desc
        if units:
            ds.attrs["units"] = units
    attach_trajectory_scales(g)


def _reopen(g: h5py.Group):
    """The last checkpoint of a trajectory (or None), dropping series logged after it."""
    step = int(g.attrs["checkpoint_step"])
    keep = int(np.searchsorted(g["step"][()], step, side="right")) if step >= 0 else 0
    for name in ("step", *SERIES):
        g[name].resize((keep,))
    if step < 0:
        return None
    for slot in CHECKPOINT_SLOTS:
        if slot in g and int(g[slot].attrs["step"]) == step:
            c = g[slot]
            return step, c["theta"][()], c["m"][()], c["v"][()], int(c.attrs["adam_t"])
    raise StoreError(f"trajectory {g.name}: no checkpoint matches checkpoint_step {step}")


CHECKPOINT_SLOTS = ("checkpoint_a", "checkpoint_b")


def write_trajectories(path: str | Path, names: list[str], step: int, log: dict[str, np.ndarray],
                       log_steps: list[int], theta: np.ndarray, m: np.ndarray, v: np.ndarray, adam_t: int,
                       done: bool) -> None:
    """Append logged rows and store a checkpoint for each named trajectory; the checkpoint step is set last."""
    with open_file(path, "r+") as f:
        if "analysis" in f:  # new results make a stored analysis stale
            del f["analysis"]
        for j, name in enumerate(names):
            g = f["trajectories"][name]
            n0 = g["step"].shape[0]
            n1 = n0 + len(log_steps)
            for key in ("step", *SERIES):
                g[key].resize((n1,))
            g["step"][n0:n1] = log_steps
            for key in SERIES:
                g[key][n0:n1] = log[key][j]
            # write the slot that does not hold the current checkpoint: a kill mid-write leaves that one intact
            current = int(g.attrs["checkpoint_step"])
            slot = next(n for n in CHECKPOINT_SLOTS if n not in g or int(g[n].attrs["step"]) != current)
            c = g.require_group(slot)
            c.attrs["description"] = ("state to resume from: parameters and AdamW moments after 'step' steps; "
                                      "the slot whose step equals the trajectory's checkpoint_step is current")
            c.attrs["step"] = -1
            for key, value in (("theta", theta[j]), ("m", m[j]), ("v", v[j])):
                if key in c:
                    c[key][...] = value
                else:
                    c.create_dataset(key, data=value)
            c.attrs["adam_t"] = adam_t
            c.attrs["step"] = step
        f.flush()
        for name in names:
            g = f["trajectories"][name]
            g.attrs["checkpoint_step"] = step
            g.attrs["status"] = "done" if done else "running"
        f.flush()


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """Every trajectory as a dict of its attributes and series (numpy arrays)."""
    out = []
    with open_file(path, "r") as f, _damaged_as_error(path):
        if "trajectories" not in f:
            return out
        for name, g in f["trajectories"].items():
            t = {"name": name, **{k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()
                                  if k not in ("config", "identity", "description")}}
            t["config"] = json.loads(g.attrs["config"])
            t["step"] = g["step"][()]
            for key in SERIES:
                t[key] = g[key][()]
            out.append(t)
    return out


# ---------------------------------------------------------------- analysis

def write_analysis(path: str | Path, result: dict[str, Any]) -> None:
    """Store ``landscape analyze`` results under ``/analysis`` (replacing earlier ones).

    The full result is the JSON attribute ``result``; the headline numbers are also
    plain attributes (NaN where there is no answer) for readers without JSON.
    """
    def num(x):
        return float("nan") if x is None else float(x)

    with open_file(path, "r+") as f:
        if "analysis" in f:
            del f["analysis"]
        g = f.create_group("analysis")
        g.attrs["description"] = ("critical norm w_c (knee of the train-loss L), test-minimizing norm w_star, "
                                  "Goldilocks zone, and per trajectory the memorization and grokking steps with "
                                  "the steps AdamW's decoupled decay needs to shrink the norm to each target; "
                                  "norms are L2 norms of the constrained parameters")
        g.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        g.attrs["result"] = _json(result)
        scan = result.get("scan") or {}
        for key in ("w_c", "w_star"):
            est = scan.get(key) or {}
            g.attrs[key] = np.array([num(est.get("value")), num(est.get("low")), num(est.get("high"))])
        zone = scan.get("zone") or {}
        g.attrs["goldilocks_zone"] = np.array([num((zone.get("low") or {}).get("value")),
                                               num((zone.get("high") or {}).get("value"))])
        g.attrs["estimate_layout"] = "w_c, w_star: [value, low, high]; goldilocks_zone: [low edge, high edge]"
        trajs = result.get("trajectories") or []
        if trajs:
            t = g.create_group("trajectories")
            t.create_dataset("name", data=np.array([x["name"] for x in trajs], dtype=h5py.string_dtype()))
            t.create_dataset("weight_decay", data=np.array([num(x["weight_decay"]) for x in trajs]))
            for key in ("memorization", "grokking"):
                ds = t.create_dataset(f"{key}_step", data=np.array([num(x[key]["step"]["value"]) for x in trajs]))
                ds.attrs["description"] = f"first logged step meeting the {key} criterion (NaN: never)"
            targets = [p["target"] for p in trajs[0]["predictions"]]
            for i, target in enumerate(targets):
                ds = t.create_dataset(f"predicted_step_{target}",
                                      data=np.array([num(x["predictions"][i]["step"]["value"]) for x in trajs]))
                ds.attrs["description"] = (f"memorization step + ln(w_mem / {target}) / -ln(1 - lr wd): "
                                           "predicted grokking step")


def read_analysis(path: str | Path) -> dict[str, Any] | None:
    with open_file(path, "r") as f, _damaged_as_error(path):
        return json.loads(f["analysis"].attrs["result"]) if "analysis" in f else None

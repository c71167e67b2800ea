"""``/scan``: the reduced landscape, K norms x R restarts, written chunk by chunk.

Every per-point dataset ``[K, R]`` is one entry of ``POINT_VALUES``; creating,
writing, reading and merging a scan all loop over it, so a new per-point value
is one declaration here plus the field of the same name in
``landscape.experiments.scan.ChunkResult`` (filled in ``scan._final``). ``status`` is written after everything else.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..config.grid import product
from ..status import Status
from .curvature import CURVATURE, CURVATURE_AXES, create_curvature
from .durable import commit
from .verify import incomplete_points
from .format import (
    STATUS_DTYPE, STATUS_ENUM, StoreError, check_task, damaged_as_error, data_fingerprint, describe_difference,
    drop_analysis, open_file, reset_scales, set_root_config, to_json, write_root
)


@dataclass(frozen=True)
class PointValue:
    """A ``[K, R]`` dataset: its type, the value of a point not computed yet, and what it means."""

    dtype: Any
    fill: Any
    description: str


POINT_VALUES = {
    "train_loss": PointValue(np.float64, np.nan, "training loss at the final constrained iterate"),
    "test_loss": PointValue(np.float64, np.nan,
                            "test loss at the final constrained iterate (not the best seen during training)"),
    "train_acc": PointValue(np.float64, np.nan, "training accuracy at the final iterate (NaN for regression tasks)"),
    "test_acc": PointValue(np.float64, np.nan, "test accuracy at the final iterate (NaN for regression tasks)"),
    "grad_norm": PointValue(np.float64, np.nan,
                            "L2 norm of the full-batch training-loss gradient projected on the sphere's tangent "
                            "space (a stationarity certificate: 0 at a constrained critical point)"),
    "steps": PointValue(np.int64, -1,
                        "optimizer steps run (up to divergence for diverged points; -1 = not computed)"),
}
HISTORY = ("train_loss", "test_loss")  # /scan/history/NAME [K, R, T] with --history


# Where each kind of scan lives: the independent scan at /scan, the continuation branches beside it, each laid
# out like /scan (plus ``last_params``, the minimizer each restart reached at its branch's last finished norm).
GROUPS = {"independent": "scan", "down": "branches/down", "up": "branches/up"}
EXTRAS = ("history/train_loss", "history/test_loss", "params",  # optional per-point datasets, [K, R, ...]
          *(f"curvature/{name}" for name in CURVATURE))


def scan_identity(config, plan, branch: str = "independent") -> dict:
    """What must match for a file's scan (or a branch) to be resumed: the config with the grid resolved."""
    ident = config.identity()
    ident.pop("norms")
    ident.pop("absolute")
    ident.pop("branch", None)  # the group a scan is stored in says which branch it is
    if branch != "down" or ident.get("from_trajectory") is None:
        ident.pop("from_trajectory", None)  # where the down branch starts; nothing else depends on it
    if not ident.get("curvature"):  # files from before --curvature resume as they are
        for key in ("curvature", "curvature_samples", "lanczos"):
            ident.pop(key, None)
    else:
        ident["lanczos"] = plan.lanczos  # resolved: the default and the same number given are one scan
    ident["alpha"] = np.vectorize(lambda a: float(f"{a:.12g}"))(np.asarray(plan.alpha, float)).tolist()
    if plan.groups:
        ident["groups"] = list(plan.groups)
    return json.loads(to_json(ident))


def _pending(g: h5py.Group, mine: np.ndarray, n_params: int, repaired: list | None) -> np.ndarray:
    """The points still to compute: pending, or marked done without everything a finished point holds (checked,
    not trusted: ``verify.incomplete_points``; their count is appended to ``repaired``)."""
    status = g["status"][()].astype(np.int8).ravel()
    broken = incomplete_points(g, len(axis_names(g)), n_params)
    if repaired is not None:
        repaired.append(int(broken[mine].sum()))
    return mine[(status[mine] == Status.PENDING) | broken[mine]]


def shard_points(plan, shard: tuple[int, int] | None, branch: str = "independent") -> np.ndarray:
    """The points a shard computes: ``i, i + n, ...`` of the scan; of a branch, every norm of the restarts
    ``r = i, i + n, ...`` (a branch is sequential in norm, so it is split by restart)."""
    R = plan.config.restarts
    if shard is None:
        return np.arange(len(plan.norm) * R)
    if branch == "independent":
        return np.arange(shard[0], len(plan.norm) * R, shard[1])
    return np.array([k * R + r for k in range(len(plan.norm)) for r in range(shard[0], R, shard[1])], dtype=np.int64)


def prepare_scan(path: str | Path, config, plan, overwrite: bool = False,
                 shard: tuple[int, int] | None = None, branch: str = "independent",
                 repaired: list | None = None) -> np.ndarray:
    """Create or reopen ``path`` for ``plan``; return the point indices still to compute.

    ``branch`` (``GROUPS``) picks the group: the independent scan or a continuation branch; a file holds one
    of each, and a branch's settings are checked against its own group only.

    An existing file with the same scan is resumed (only pending points are
    returned). A file with another scan, task or data is refused unless
    ``overwrite``, which replaces the whole file -- and only a landscape file:
    anything else at ``path`` is never deleted. With ``shard = (i, n)`` the file
    is a shard file and only points ``i, i + n, i + 2n, ...`` are returned. Of a resumed scan, the points
    marked done but incomplete are returned too, and their count is appended to ``repaired``.
    """
    mine = shard_points(plan, shard, branch)
    path = Path(path)
    fingerprint = data_fingerprint(plan.task)
    ident = scan_identity(config, plan, branch)
    name, what = GROUPS[branch], "scan" if branch == "independent" else f"{branch} branch"
    new = True
    if path.exists():
        with open_file(path, "r", shapes=not overwrite) as f, damaged_as_error(path):
            if not overwrite:  # (with overwrite, opening it proved it is a landscape file; it is replaced below)
                check_task(f, path, plan.task, fingerprint)
                if name in f:
                    stored = json.loads(f[name].attrs["identity"])
                    if stored != ident:
                        raise StoreError(f"{path}: holds a {what} with another configuration "
                                         f"({describe_difference(stored, ident)}); use --overwrite to replace "
                                         f"{'the file' if branch == 'independent' else 'the branch'}, "
                                         "or another --out")
                    stored_shard = tuple(int(v) for v in f[name].attrs.get("shard", ()))
                    if stored_shard != (tuple(shard) if shard else ()):
                        raise StoreError(f"{path}: was written as shard {stored_shard or 'none'}, not "
                                         f"{tuple(shard) if shard else 'none'}; use another --out")
                    return _pending(f[name], mine, plan.layout.size, repaired)
                new = "format" not in f.attrs  # an empty HDF5 file: treated as no file
    with commit(path, new=new or overwrite) as f:
        if new or overwrite:
            write_root(f, plan.task, fingerprint)
        set_root_config(f, "scan", config, plan.task.options, path)
        _create(f, config, plan, ident, shard, branch)
    return mine


def _create(f: h5py.File, config, plan, ident: dict, shard=None, branch: str = "independent") -> None:
    R = config.restarts
    grid = (*(plan.shape or (len(plan.norm),)), R)  # [K, R], or [K1, K2, R] for a two-norm grid
    g = f.create_group(GROUPS[branch])
    g.attrs["branch"] = branch
    if branch != "independent":
        g.attrs["branch_description"] = (
            f"continuation branch: the norms visited from the {'largest' if branch == 'down' else 'smallest'} on, "
            "each point of a restart warm-started from its minimizer at the previous norm, rescaled; the first "
            "from the restart's initialization (as in the independent scan)")
        ds = g.create_dataset("last_params", shape=(R, plan.layout.size), dtype=np.float32, fillvalue=np.nan)
        ds.attrs["description"] = ("each restart's minimizer at the branch's last finished norm (where a resumed "
                                   "branch goes on from), flattened in the order of the 'names' attribute")
        ds.attrs["names"] = to_json(list(plan.layout.names))
    if shard is not None:
        g.attrs["shard"] = np.array(shard[:2], dtype=np.int64)
        g.attrs["shard_description"] = (
            "this file is shard [index, count] of a larger scan: it computes the points k * R + r = index, "
            "index + count, ...; `landscape merge` joins the shards" if branch == "independent" else
            "this file is shard [index, count] of a branch: it computes every norm of the restarts r = index, "
            "index + count, ...; `landscape merge` joins the shards")
    g.attrs["description"] = ("Reduced loss landscape: for each norm, the training loss minimized over parameters "
                              "whose constrained part has that L2 norm, with train and test metrics read at the minimizer.")
    g.attrs["config"] = to_json({**dataclasses.asdict(config), "task_options": plan.task.options})
    g.attrs["identity"] = to_json(ident)
    g.attrs["w0"] = plan.w0
    g.attrs["w0_description"] = "L2 norm of the constrained parameters at the default initialization (restart 0)"
    if plan.groups:
        g.attrs["w0_description"] += ", one per norm group"
        g.attrs["groups"] = to_json([{"glob": glob, "parameters": plan.layout.group_names(k + 1)}
                                     for k, glob in enumerate(plan.groups)])
        g.attrs["parameter_names"] = to_json(list(plan.layout.names))
        g.attrs["groups_description"] = (
            "two-norm grid: each group's parameters held at their own L2 norm (a product of two spheres); every "
            "per-point dataset is [K1, K2, R], dimension 0 along group 1's norms (norm_1, alpha_1), dimension 1 "
            "along group 2's (norm_2, alpha_2)")
    g.attrs["method"] = config.method
    g.attrs["method_label"] = plan.method_label
    g.attrs["constrained_parameters"] = to_json([n for n, c in zip(plan.layout.names, plan.layout.constrained) if c])
    g.attrs["classification"] = plan.task.classification

    for suffix, (alpha_v, norm_v, what) in _axes(plan).items():
        alpha = g.create_dataset("alpha" + suffix, data=alpha_v)
        alpha.attrs["units"] = "multiples of w0"
        alpha.attrs["long_name"] = "norm / w0" + (f" of group {suffix[1:]}" if suffix else "")
        norm = g.create_dataset("norm" + suffix, data=norm_v)
        norm.attrs["units"] = "L2 norm"
        norm.attrs["long_name"] = f"L2 norm of {what}"
    restart = g.create_dataset("restart", data=np.arange(R, dtype=np.int64))
    restart.attrs["long_name"] = "independent initialization index"
    for name, value in POINT_VALUES.items():
        ds = g.create_dataset(name, shape=grid, dtype=value.dtype, fillvalue=value.fill)
        ds.attrs["description"] = value.description
    ds = g.create_dataset("status", shape=grid, dtype=STATUS_DTYPE, fillvalue=int(Status.PENDING))
    ds.attrs["description"] = "pending = not computed yet, done = finished, diverged = a loss became NaN or inf"
    ds.attrs["flag_values"] = np.array(list(STATUS_ENUM.values()), dtype=np.int8)  # CF flags, for netCDF readers
    ds.attrs["flag_meanings"] = " ".join(STATUS_ENUM)
    if config.history:
        h = g.create_group("history")
        st = h.create_dataset("step", data=plan.history_steps)
        st.attrs.update(long_name="optimizer step", units="step")
        for name in HISTORY:
            ds = h.create_dataset(name, shape=(*grid, len(plan.history_steps)), dtype=np.float64, fillvalue=np.nan)
            ds.attrs["description"] = f"full-data {name.replace('_', ' ')} recorded during the constrained optimization"
    if config.save_params:
        P = plan.layout.size
        ds = g.create_dataset("params", shape=(*grid, P), dtype=np.float32, fillvalue=np.nan,
                              chunks=(*[1] * len(grid), P))
        ds.attrs["description"] = "constrained minimizers, flattened in the order of the 'names' attribute"
        ds.attrs["names"] = to_json(list(plan.layout.names))
        ds.attrs["shapes"] = to_json([list(s) for s in plan.layout.shapes])
        g.create_dataset("constrained", data=plan.layout.mask().numpy().astype(np.int8))
    if config.curvature:
        create_curvature(g, grid, config.curvature, plan.lanczos)
    attach_scales(g)


def _axes(plan) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """The norm axes to store: ``{"": (alpha, norm, what)}``, or ``{"_1": ..., "_2": ...}`` for a two-norm grid."""
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    if not plan.groups:
        return {"": (f64(plan.alpha), f64(plan.norm), "the constrained parameters")}
    K1, K2 = plan.shape
    a, n = f64(plan.alpha).reshape(K1, K2, 2), f64(plan.norm).reshape(K1, K2, 2)
    return {"_1": (a[:, 0, 0], n[:, 0, 0], f"group 1 ({plan.groups[0]})"),
            "_2": (a[0, :, 1], n[0, :, 1], f"group 2 ({plan.groups[1]})")}


def axis_names(g: h5py.Group) -> list[str]:
    """The suffixes of the norm axes a scan group stores, in dimension order."""
    return ["_1", "_2"] if "groups" in g.attrs else [""]


def attach_scales(g: h5py.Group) -> None:
    """Make ``norm`` (per group for a two-norm grid: ``norm_1``, ``norm_2``), ``restart`` (and ``history/step``)
    the dimension scales of every dataset, with ``alpha`` a coordinate along its norm axis (format 2: netCDF
    readers such as ``xarray.open_dataset(..., engine="h5netcdf")`` see dimensions ``norm`` and ``restart``,
    and ``alpha`` as a coordinate through CF's ``coordinates`` attribute)."""
    reset_scales(g)
    axes = axis_names(g)
    scales = [(g["norm" + a],) for a in axes]
    restart = g["restart"]
    for ds in (*[pair[0] for pair in scales], restart):
        ds.make_scale(ds.name.rsplit("/", 1)[1])
    for (norm,), a in zip(scales, axes):
        g["alpha" + a].dims[0].attach_scale(norm)
    coordinates = " ".join("alpha" + a for a in axes)
    step = None
    if "history" in g:
        step = g["history/step"]
        step.make_scale("step")
    targets = [g[n] for n in (*POINT_VALUES, "status", "params") if n in g]
    if step is not None:
        targets += [g["history"][n] for n in HISTORY]
    if "curvature" in g:
        targets += [g["curvature"][n] for n in CURVATURE]
        for axis in CURVATURE_AXES:
            g["curvature"][axis].make_scale(axis)
        for name, value in CURVATURE.items():
            if value.axis:
                g["curvature"][name].dims[len(axes) + 1].attach_scale(g["curvature"][value.axis])
    if "params" in g:  # the flattened parameter axis has a scale too: netCDF readers need every axis labelled
        if "parameter" not in g:
            g.create_dataset("parameter", data=np.arange(g["params"].shape[-1], dtype=np.int64)).attrs[
                "long_name"] = "index into the flattened parameters (order: the params dataset's 'names')"
        g["parameter"].make_scale("parameter")
        g["params"].dims[len(axes) + 1].attach_scale(g["parameter"])
    for ds in targets:
        ds.attrs["coordinates"] = coordinates
        for d, pair in enumerate(scales):
            for scale in pair:
                ds.dims[d].attach_scale(scale)
        ds.dims[len(axes)].attach_scale(restart)
        if step is not None and ds.name.startswith(g.name + "/history"):
            ds.dims[len(axes) + 1].attach_scale(step)


def points(arr: np.ndarray, n_axes: int) -> np.ndarray:
    """A ``[K, R, ...]`` view of a per-point array stored with ``n_axes`` norm axes (``[K1, K2, R, ...]``)."""
    return arr.reshape(-1, *arr.shape[n_axes:])


def write_chunk(path: str | Path, result, restarts: int, branch: str = "independent",
                last_params: np.ndarray | None = None) -> None:
    """Store one chunk of results (of the scan or a branch, with the branch's ``last_params [R, P]``);
    statuses are written last, then the file is closed."""
    ks, rs = np.divmod(result.index, restarts)
    with commit(path) as f:
        drop_analysis(f)
        g = f[GROUPS[branch]]
        n_axes = len(axis_names(g))
        grid = g["status"].shape[:n_axes]

        def at(k):  # the stored index of norm point k (k = k1 * K2 + k2 on a two-norm grid)
            return np.unravel_index(int(k), grid)

        if last_params is not None:
            g["last_params"][...] = last_params
        for name in POINT_VALUES:
            arr = g[name][()]
            points(arr, n_axes)[ks, rs] = getattr(result, name)
            g[name][...] = arr
        if result.history is not None and "history" in g:
            for name, values in zip(HISTORY, result.history):
                for j, (k, r) in enumerate(zip(ks, rs)):
                    g["history"][name][(*at(k), r)] = values[j]
        if result.curvature is not None and "curvature" in g:
            for name, values in zip(CURVATURE, result.curvature):
                arr = g["curvature"][name][()]
                points(arr, n_axes)[ks, rs] = values
                g["curvature"][name][...] = arr
        if result.params is not None and "params" in g:
            for j, (k, r) in enumerate(zip(ks, rs)):
                g["params"][(*at(k), r)] = result.params[j]
        f.flush()
        status = g["status"][()]
        points(status, n_axes)[ks, rs] = result.status
        g["status"][...] = status
        f.flush()


def read_scan(path: str | Path, branch: str = "independent") -> dict[str, Any] | None:
    """Everything under ``/scan`` (or a branch's group) as numpy arrays and plain values, or None if the file
    has none."""
    with open_file(path, "r") as f, damaged_as_error(path):
        if GROUPS[branch] not in f:
            return None
        g = f[GROUPS[branch]]
        n_axes = len(axis_names(g))
        out = {k: points(g[k][()], n_axes) for k in POINT_VALUES}
        out["status"] = points(g["status"][()].astype(np.int8), n_axes)
        if n_axes == 1:
            out["alpha"], out["norm"] = g["alpha"][()], g["norm"][()]
            out["w0"] = float(g.attrs["w0"])
        else:  # a two-norm grid, flattened to [K1 * K2, R] points; "plane" keeps its axes
            axes = {k: [g[k + a][()] for a in axis_names(g)] for k in ("alpha", "norm")}
            out["alpha"], out["norm"] = product(axes["alpha"]), product(axes["norm"])
            out["w0"] = np.asarray(g.attrs["w0"], dtype=float)
            out["plane"] = {"groups": json.loads(g.attrs["groups"]), "shape": tuple(len(a) for a in axes["norm"]),
                            "parameter_names": json.loads(g.attrs.get("parameter_names", "[]")), **axes}
        grid = out["status"].shape
        wrong = [k for k in POINT_VALUES if out[k].shape != grid] + \
            [k for k in ("alpha", "norm") if len(out[k]) != grid[0]]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not the shape of the status grid {list(grid)}")
        codes = sorted(set(np.unique(out["status"]).tolist()) - {int(s) for s in Status})
        if codes:
            raise ValueError(f"{g.name}/status holds {codes[0]}, not a status code "
                             f"({', '.join(f'{int(s)} {s.label}' for s in Status)})")
        out["config"] = json.loads(g.attrs["config"])
        out["method_label"] = str(g.attrs.get("method_label", f"{out['config']['method']} Adam"))  # older files
        out["classification"] = bool(g.attrs["classification"])
        out["task"] = str(f.attrs["task"])
        if "history" in g:
            out["history"] = {"step": g["history/step"][()],
                              **{k: points(g["history"][k][()], n_axes) for k in HISTORY}}
        if "params" in g:
            out["params"] = points(g["params"][()], n_axes)
        if "curvature" in g:
            out["curvature"] = {name: points(g["curvature"][name][()], n_axes) for name in CURVATURE}
        out["branch"] = branch
        return out


def read_branches(path: str | Path) -> dict[str, dict[str, Any]]:
    """The continuation branches the file holds: ``{"down": scan dict, "up": ...}`` (``read_scan``'s form)."""
    out = {}
    for branch in GROUPS:
        if branch != "independent":
            s = read_scan(path, branch)
            if s is not None:
                out[branch] = s
    return out


def branch_state(path: str | Path, branch: str) -> np.ndarray:
    """A branch's ``last_params [R, P]`` (NaN where a restart has not finished a point)."""
    with open_file(path, "r") as f, damaged_as_error(path):
        return f[GROUPS[branch]]["last_params"][()]

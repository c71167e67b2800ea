"""Join shard files into one file, as if the whole scan or sweep had run in one process.

Checks that every shard holds the same experiment (task, data, scan and training
settings), takes each scan point and each trajectory from the shard that
finished it, reports overlaps that disagree and points or trajectories that no
shard finished, and writes the result atomically (a temporary file renamed into
place). A shard or output that holds anything the format does not define is
refused when opened (``schema``), so every group is one this module knows;
inside ``/scan`` the per-point datasets are merged (the axes come from the
first shard), and the root attributes are the first shard's. Merging the same
shards again gives the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..config.settings import TrainConfig, execution_fields
from ..status import Status
from . import scan as scan_group
from . import trajectories as traj_group
from .durable import image, in_memory, write_durably, write_errors
from .format import StoreError, damaged_as_error, open_file, to_json

_PART = {"independent": "scan", "down": "down", "up": "up"}  # each scan group's key in an identity
SCANS = tuple(_PART.values())


@dataclass
class Report:
    """What a merge found: missing scan points as (where, restart), missing trajectory names."""

    shards: list[str]
    points: int = 0
    missing_points: list[tuple[str, int]] = field(default_factory=list)  # ("alpha=0.5", restart)
    trajectories: int = 0
    missing_trajectories: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing_points and not self.missing_trajectories

    def describe_missing(self, limit: int = 8) -> str:
        parts = []
        if self.missing_points:
            pts = ", ".join(f"({a}, restart {r})" for a, r in self.missing_points[:limit])
            more = len(self.missing_points) - limit
            parts.append(f"{len(self.missing_points)} scan points missing: {pts}" + (f" and {more} more" if more > 0 else ""))
        if self.missing_trajectories:
            names = ", ".join(self.missing_trajectories[:limit])
            more = len(self.missing_trajectories) - limit
            parts.append(f"{len(self.missing_trajectories)} trajectories unfinished: {names}"
                         + (f" and {more} more" if more > 0 else ""))
        return "; ".join(parts)


def _identity(f: h5py.File) -> dict:
    """What must agree across shards: the task and data, and each part's settings."""
    out = {"task": f.attrs.get("task"), "task_options": json.loads(f.attrs.get("task_options", "{}")),
           "data_fingerprint": f.attrs.get("data_fingerprint")}
    for part, name in scan_group.GROUPS.items():
        if name in f:
            out[_PART[part]] = json.loads(f[name].attrs["identity"])
    configs = json.loads(f.attrs.get("config", "{}"))
    if "trajectories" in f and "train" in configs:
        train = dict(configs["train"])
        for key in (*execution_fields(TrainConfig), "task_options"):
            if key != "engine":  # engines differ in float rounding: their shards are not merged together
                train.pop(key, None)
        out["train"] = train
    return out


def _compatible(a: dict, b: dict) -> str:
    """'' when two identities can be merged (same task and data; same settings for parts both hold)."""
    for key in ("task", "task_options", "data_fingerprint", *SCANS, "train"):
        if key in (*SCANS, "train") and (key not in a or key not in b):
            continue
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                return f"{key}.{_first_difference(a[key], b[key])}"
            return f"{key}: {a.get(key)!r} vs {b.get(key)!r}"
    return ""


def _first_difference(a: dict, b: dict) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                return f"{key}.{_first_difference(a[key], b[key])}"
            return f"{key}: {a.get(key)!r} vs {b.get(key)!r}"
    return ""


def _sweep_names(train: dict) -> list[str]:
    """The names of the sweep's trajectories (files from before per-member lr and training share: one of each)."""
    axes = {k: train[k] for k in ("weight_decay", "init_scale", "seeds", "lr", "train_frac", "fix_norm",
                                "group_lr", "group_weight_decay") if k in train}
    return [m.name for m in TrainConfig(**axes).members()]


def merge(paths: list[str | Path], out: str | Path, allow_partial: bool = False) -> Report:
    """Merge ``paths`` into ``out``; raises ``StoreError`` with one line when it cannot.

    Scan shards and training shards of one experiment may be merged together or
    one after the other: when ``out`` already holds the same task and data, the
    parts the shards do not provide (say, its scan when merging training shards)
    are kept.
    """
    paths = list({Path(p).resolve(): Path(p) for p in paths}.values())
    out = Path(out)
    if not paths:
        raise StoreError("merge: no shard files given")
    if not out.parent.is_dir():
        raise StoreError(f"merge: directory {str(out.parent)!r} of the output does not exist")
    if any(p.resolve() == out.resolve() for p in paths):
        raise StoreError(f"merge: the output {out} is also one of the inputs")
    files = [open_file(p, "r") for p in paths]
    try:
        with damaged_as_error(paths[0]):
            idents = [_identity(f) for f in files]
        for p, f, ident in zip(paths, files, idents):
            if "format" not in f.attrs or not any(k in ident for k in (*SCANS, "train")):
                raise StoreError(f"merge: {p} holds neither a scan nor trajectories of a landscape run")
        for p, ident in zip(paths, idents):
            for q, other in zip(paths, idents):
                why = _compatible(ident, other)
                if why:
                    raise StoreError(f"merge: {q} holds another experiment than {p} ({why})")
        parts = {k for ident in idents for k in (*SCANS, "train") if k in ident}
        whole = dict(idents[0])
        for ident in idents:
            whole.update({k: ident[k] for k in (*SCANS, "train") if k in ident})
        report = Report([str(p) for p in paths])
        existing = open_file(out, "r") if out.exists() else None
        try:
            if existing is not None:
                with damaged_as_error(out):
                    why = _compatible(_identity(existing), whole)
                if why:
                    raise StoreError(f"merge: {out} exists and holds another experiment ({why}); choose another -o")
            dst = in_memory(None, out)  # built in memory, written whole (landscape.store.durable)
            try:
                which = paths[0] if len(paths) == 1 else f"one of the {len(paths)} inputs ({paths[0]}, ...)"
                with damaged_as_error(which):  # a dataset a finished file must hold, missing
                    _write(dst, files, paths, idents, existing, out, parts, whole, report)
                if not report.complete:
                    if not allow_partial:
                        raise StoreError(f"merge: {report.describe_missing()}; rerun the failed shards, or pass "
                                         "--allow-partial to record the gaps")
                    dst.attrs["missing"] = report.describe_missing(limit=10**9)
                merged = image(dst)
            finally:
                dst.close()
            if existing is not None:
                existing.close()
                existing = None
            with write_errors(out, None if out.exists() else "nothing was written; the shard files are kept"):
                write_durably(out, merged)
        finally:
            if existing is not None:
                existing.close()
        return report
    finally:
        for f in files:
            f.close()


def _write(dst, files, paths, idents, existing, out, parts, whole, report: Report) -> None:
    _root(dst, files, existing, paths)
    # the output's own finished results count as one more holder: nothing done is dropped
    holders = list(zip(files, paths, idents))
    if existing is not None:
        holders.append((existing, out, _identity(existing)))
    for part, name in scan_group.GROUPS.items():
        key = _PART[part]
        if key in parts:
            points, missing = merge_scans([(f, p) for f, p, i in holders if key in i], dst, name)
            report.points += points
            report.missing_points += [(where if key == "scan" else f"{part} branch, {where}", r)
                                      for where, r in missing]
        elif existing is not None and name in existing:
            copy_scan(existing, dst, name)
    if "train" in parts:
        _merge_trajectories(holders, dst, report, _sweep_names(whole["train"]))
    if existing is not None and "trajectories" in existing:
        top = dst.require_group("trajectories")
        for name, g in existing["trajectories"].items():
            if name not in top:
                traj_group.copy_trajectory(g, top, name)


def _root(dst: h5py.File, files, existing, paths) -> None:
    """Root attributes of the first shard; ``config`` joins every command's configuration."""
    configs = {}
    for f in ([existing] if existing is not None else []) + list(files):
        configs.update(json.loads(f.attrs.get("config", "{}")))
    for key, value in files[0].attrs.items():
        dst.attrs[key] = value
    dst.attrs["config"] = to_json(configs)
    dst.attrs["merged_from"] = to_json([p.name for p in paths])


def _merge_trajectories(holders, dst: h5py.File, report: Report, names: list[str]) -> None:
    top = dst.require_group("trajectories")
    top.attrs["description"] = traj_group.DESCRIPTION
    for name in names:
        best = None
        for f, p, _ in holders:
            if "trajectories" not in f or name not in f["trajectories"]:
                continue
            g = f["trajectories"][name]
            rank = traj_group.finished(g)
            if best is None or rank > best[0]:
                best = (rank, f, g)
            elif rank[0] and best[0][0] and not traj_group.same_results(g, best[2]):
                raise StoreError(f"merge: trajectory {name} was finished by two shards with different results "
                                 f"({best[1].filename} and {p})")
        if best is None:
            report.missing_trajectories.append(name)
            continue
        traj_group.copy_trajectory(best[2], top, name)
        if best[0][0]:
            report.trajectories += 1
        else:
            report.missing_trajectories.append(name)


def merge_scans(holders: list[tuple[h5py.File, Path]], dst: h5py.File,
                name: str = "scan") -> tuple[int, list[tuple[str, int]]]:
    """Join the scan group ``name`` (``/scan`` or a branch's, ``GROUPS``) of every holder into ``dst``: each point
    from the file that finished it (a branch's ``last_params`` row from the file that computed that restart).

    Returns ``(points done, missing points as (where, restart))``; raises ``StoreError``
    when two files finished one point with different results.
    """
    g = _copy_group(holders[0][0], dst, name)
    for key in ("shard", "shard_description"):
        if key in g.attrs:
            del g.attrs[key]
    pending = int(Status.PENDING)
    n_axes = len(scan_group.axis_names(g))
    shape = g["status"].shape

    def blank(k):  # a stored dataset's shape, filled, as a [K, R, ...] view of the points
        return scan_group.points(np.full(g[k].shape, g[k].fillvalue, dtype=g[k].dtype), n_axes)

    def read(f, k):
        return scan_group.points(f[name][k][()], n_axes)

    status = scan_group.points(np.full(shape, pending, dtype=np.int8), n_axes)
    values = {k: blank(k) for k in scan_group.POINT_VALUES}
    extra = [k for k in scan_group.EXTRAS if k in g]
    extras = {k: blank(k) for k in extra}
    owner = np.full(status.shape, -1)
    for j, (f, p) in enumerate(holders):
        s = read(f, "status").astype(np.int8)
        done = s != pending
        if not done.any():
            continue
        vals = {k: read(f, k) for k in scan_group.POINT_VALUES}
        ex = {k: read(f, k) for k in extra}
        for k, r in zip(*np.nonzero(done & (owner >= 0))):
            same = s[k, r] == status[k, r] and all(
                np.array_equal(vals[n][k, r], values[n][k, r], equal_nan=True) for n in scan_group.POINT_VALUES)
            if not same:
                raise StoreError(f"merge: {'' if name == 'scan' else g.attrs['branch'] + ' branch '}point "
                                 f"({_where(g, k, n_axes)}, restart {r}) was computed by both "
                                 f"{holders[owner[k, r]][1]} and {p} with different results")
        take = done & (owner < 0)
        status[take] = s[take]
        owner[take] = j
        for n in scan_group.POINT_VALUES:
            values[n][take] = vals[n][take]
        for n in extra:
            extras[n][take] = ex[n][take]
    for n in scan_group.POINT_VALUES:
        g[n][...] = values[n].reshape(g[n].shape)
    for n in extra:
        g[n][...] = extras[n].reshape(g[n].shape)
    g["status"][...] = status.reshape(shape)
    if "last_params" in g:  # each restart's row from the first file that finished a point of it
        last = np.full(g["last_params"].shape, np.nan, dtype=np.float32)
        for f, _ in holders:
            rows = f[name]["last_params"][()]
            take = ~np.isfinite(last).all(1) & np.isfinite(rows).all(1)
            last[take] = rows[take]
        g["last_params"][...] = last
    scan_group.attach_scales(g)
    return int((status != pending).sum()), [(_where(g, k, n_axes), int(r)) for k, r in zip(*np.nonzero(status == pending))]


def _where(g: h5py.Group, k: int, n_axes: int) -> str:
    """Norm point k of a scan group, for messages: ``alpha=...`` (``alpha_1=..., alpha_2=...``)."""
    if n_axes == 1:
        return f"alpha={float(g['alpha'][k]):.4g}"
    k1, k2 = np.unravel_index(int(k), g["status"].shape[:2])
    return f"alpha_1={float(g['alpha_1'][k1]):.4g}, alpha_2={float(g['alpha_2'][k2]):.4g}"


def copy_scan(src: h5py.File, dst: h5py.File, name: str = "scan") -> None:
    """Copy the scan group ``name`` as it is (its dimension scales rebuilt)."""
    scan_group.attach_scales(_copy_group(src, dst, name))


def _copy_group(src: h5py.File, dst: h5py.File, name: str) -> h5py.Group:
    """Copy group ``name`` (``branches/down``: its parent made first) from ``src`` into ``dst``."""
    if "/" in name:
        dst.require_group(name.rsplit("/", 1)[0])
    src.copy(src[name], dst, name=name)
    return dst[name]

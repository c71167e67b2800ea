"""The file itself: format name and version, opening and refusing files, root attributes, JSON, errors.

Everything here is shared by the groups of a landscape file (``/scan``,
``/trajectories``, ``/analysis``); each group's datasets are declared in its own
module of this package.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import BadInput, one_line
from ..plain import to_json as _to_json
from ..status import POINT

FORMAT = "landscape"
FORMAT_VERSION = 2  # 2: a scan's dimension scales are norm and restart, alpha a coordinate (netCDF readers)
LOCK_WAIT = 120.0  # seconds to wait for another process holding the file
STATUS_ENUM = {s.label: int(s) for s in POINT}  # a scan point's status, stored as an HDF5 enum
STATUS_DTYPE = h5py.enum_dtype(STATUS_ENUM, basetype="i1")


def to_json(obj: Any) -> str:
    """Canonical JSON for attributes (NaN stays NaN, as in files written before)."""
    return _to_json(obj, finite=False)


class StoreError(BadInput):
    """The file cannot be used as asked (unreadable, foreign, or a different experiment)."""


def data_fingerprint(task) -> str:
    """SHA-256 over the task's train and test arrays: the same data gives the same string (inputs that are dicts
    or tuples of tensors: each entry's path, then its array)."""
    from ..tasks import inputs

    h = hashlib.sha256()
    for data in (task.x_train, task.y_train, task.x_test, task.y_test):
        for path, t in inputs.leaves(data):
            if not inputs.is_tensor(data):
                h.update(path.encode())
            a = t.detach().cpu().contiguous().numpy()
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def damaged_as_error(path):
    """Turn errors from reading a damaged or incomplete file into one ``StoreError`` line."""
    try:
        yield
    except StoreError:
        raise
    except (KeyError, OSError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise StoreError(f"{path}: damaged or incomplete landscape file ({type(e).__name__}: {one_line(e)})") from None


def open_file(path: str | Path, mode: str = "r", shapes: bool = True) -> h5py.File:
    """Open a landscape file, turning unreadable, foreign or damaged files into ``StoreError``.

    Every group and dataset must be one the format defines, with its kind of values
    (``schema.check_contents``) and, with ``shapes``, its shape; without, a file damaged
    only in its shapes opens, for ``--overwrite`` to replace. Waits (up to ``LOCK_WAIT``
    seconds) while another process holds the file.
    """
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
            locked = "unable to lock file" in str(e).lower()
            if locked and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(2 * delay, 0.5)
                continue
            if locked:
                raise StoreError(f"{path}: still locked by another process after {LOCK_WAIT:.0f} s") from None
            raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {one_line(e)}") from None
    check_format(f, path, shapes)
    return f


def check_format(f: h5py.File, path, shapes: bool = True) -> None:
    """Refuse (and close) an open HDF5 file that landscape did not write, wrote in a newer format, or that holds
    what the format does not define (``schema.check_contents``; its shapes too with ``shapes``)."""
    try:
        _check_format(f, path, shapes)
    except StoreError:
        raise
    except (KeyError, OSError, ValueError, TypeError, AttributeError, RuntimeError) as e:  # unreadable metadata
        f.close()
        raise StoreError(f"{path}: damaged or incomplete landscape file ({type(e).__name__}: {one_line(e)})") from None


def _check_format(f: h5py.File, path, shapes: bool) -> None:
    from .schema import check_contents

    if f.attrs.get("format") != FORMAT and len(f.keys()) + len(f.attrs) > 0:
        f.close()
        raise StoreError(f"{path}: an HDF5 file, but not one written by landscape (no format='{FORMAT}' attribute)")
    version = f.attrs.get("format_version", FORMAT_VERSION)
    if int(version) > FORMAT_VERSION:
        f.close()
        raise StoreError(f"{path}: format version {version} is newer than this landscape reads ({FORMAT_VERSION})")
    key = _identity(f)
    if key in _CHECKED:
        return
    try:
        check_contents(f, path, shapes)
    except StoreError:
        f.close()
        raise
    if key is not None and shapes:
        _CHECKED.add(key)


_CHECKED: set[tuple] = set()  # files whose contents passed the whole check in this process, by identity


def _identity(f: h5py.File) -> tuple | None:
    """A file on disk as opened (device, inode, size, times), so that a reader opening it again skips the check
    of its contents; None for a file in memory, or one changed within the last 2 s (file times are coarser than
    a write: the same racy-clean rule as Git's index)."""
    if f.driver != "sec2":
        return None
    st = os.fstat(f.id.get_vfd_handle())
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < 2_000_000_000:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


# ---------------------------------------------------------------- names beside the file

def temporary(path: Path) -> Path:
    """The hidden name beside ``path`` that a change is built under (``.NAME.tmp-PID``)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def staging(path: str | Path) -> Path:
    """Where an ``--overwrite`` run builds its new file until it is complete (``.NAME.new`` beside ``path``)."""
    path = real(path)
    return path.with_name(f".{path.name}.new")


def record_of(path: Path) -> Path:
    """The record beside the staging file of ``path`` (``landscape.store.staging``)."""
    return staging(path).with_name(staging(path).name + ".from")


def remove_stale(path: Path) -> None:
    """Remove temporaries of ``path`` and of its staging file left by killed processes (with the lock held)."""
    for name in (path.name, staging(path).name, record_of(path).name):
        pattern = re.compile(rf"\.{re.escape(name)}\.tmp-\d+")
        for p in path.parent.iterdir():
            if pattern.fullmatch(p.name):
                p.unlink(missing_ok=True)


def real(path: str | Path) -> Path:
    """The file a path names (a symlink at ``--out`` is followed: the target is changed, the link kept)."""
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def writer_lock(path: str | Path):
    """Hold the one writer's lock of output ``path`` (a lock file ``.NAME.lock`` beside it).

    A second writer is refused at once with one line naming the holder. The
    kernel drops the lock when its process dies, so a crash never leaves a
    stale lock; the file is removed on release.
    """
    path = real(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not a file")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: directory {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: directory {str(path.parent)!r} is not writable; choose another --out")
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"{path}: the file is read-only; make it writable (chmod u+w) or choose another --out")
    lock = path.with_name(f".{path.name}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"{path}: cannot create the lock file {lock.name} ({e.strerror}); "
                             "is the directory writable?") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(f"{path}: another landscape process (pid {holder}) is writing this file; "
                             "wait for it to finish or use another --out") from None
        except OSError as e:
            os.close(fd)
            raise StoreError(f"{path}: cannot lock {lock.name} ({e.strerror}); this file system may not "
                             "support flock: write to a local directory") from None
        try:  # the file may have been removed (and recreated) by a holder that just released it
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:  # the holder's pid, for the message of a second writer; a full disk only loses the pid
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        remove_stale(path)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def write_root(f: h5py.File, task, fingerprint: str) -> None:
    """The root attributes of a new file: format, software versions, time, task and data fingerprint."""
    import torch

    from ..version import __version__

    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["landscape_version"] = __version__
    f.attrs["torch_version"] = str(torch.__version__)
    f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    f.attrs["task"] = task.name
    f.attrs["task_options"] = to_json(task.options)
    f.attrs["data_fingerprint"] = fingerprint


def check_task(f: h5py.File, path, task, fingerprint: str) -> None:
    """Refuse a file whose task or data differ from ``task``."""
    if "task" not in f.attrs:
        return
    stored = (f.attrs["task"], json.loads(f.attrs["task_options"]))
    ours = (task.name, json.loads(to_json(task.options)))
    if stored != ours:
        raise StoreError(f"{path}: holds task {stored[0]} {stored[1]}, not {ours[0]} {ours[1]}; use another --out")
    if f.attrs.get("data_fingerprint") != fingerprint:
        raise StoreError(f"{path}: holds the same task but different data (data fingerprint differs); use another --out")


def same_task(path, task) -> None:
    """Refuse (``StoreError``) the landscape file ``path`` when it holds another task or other data."""
    with open_file(path, "r", shapes=False) as f, damaged_as_error(path):  # (a damaged file may be replaced)
        check_task(f, path, task, data_fingerprint(task))


def holds_task(path, task) -> bool:
    """Whether ``path`` is a landscape file of ``task`` and its data (``--overwrite`` then keeps what the command
    does not recompute)."""
    try:
        same_task(path, task)
        return True
    except StoreError:
        return False


def root_or_check(f: h5py.File, path, task, fingerprint: str) -> None:
    """Write the root attributes of a new file, or check an existing file's task and data."""
    if "format" in f.attrs:
        check_task(f, path, task, fingerprint)
    else:
        write_root(f, task, fingerprint)


def set_root_config(f: h5py.File, command: str, config, task_options: dict, path) -> None:
    """Root attribute ``config``: JSON object with the full resolved configuration of each command (``path``: the
    file's name in the error when the stored attribute is damaged)."""
    import dataclasses

    try:
        configs = json.loads(f.attrs["config"]) if "config" in f.attrs else {}
    except ValueError as e:
        raise StoreError(f"{path}: damaged or incomplete landscape file (root attribute 'config' is not JSON: "
                         f"{one_line(e)})") from None
    configs[command] = {**dataclasses.asdict(config), "task_options": task_options}
    f.attrs["config"] = to_json(configs)


def root_configs(path: str | Path) -> dict:
    """The root ``config`` attribute: ``{command: its full configuration}`` ({} when absent)."""
    with open_file(path, "r") as f, damaged_as_error(path):
        return json.loads(f.attrs["config"]) if "config" in f.attrs else {}


def describe_difference(stored: dict, ours: dict) -> str:
    """``key: a in file vs b now; ...`` for every key that differs."""
    def short(value) -> str:
        if isinstance(value, list) and len(value) > 4:
            return f"{len(value)} values {value[0]:g}..{value[-1]:g}"
        return repr(value)

    keys = sorted(set(stored) | set(ours))
    return "; ".join(f"{k}: {short(stored.get(k))} in file vs {short(ours.get(k))} now"
                     for k in keys if stored.get(k) != ours.get(k))


def drop_analysis(f: h5py.File) -> None:
    """New results make a stored analysis stale."""
    if "analysis" in f:
        del f["analysis"]


def reset_scales(g: h5py.Group) -> None:
    """Drop dimension-scale bookkeeping (stale after copying a group between files)."""
    for ds in g.values():
        if isinstance(ds, h5py.Group):
            reset_scales(ds)
            continue
        for key in ("DIMENSION_LIST", "REFERENCE_LIST", "DIMENSION_LABELS"):
            if key in ds.attrs:
                del ds.attrs[key]


def attrs_of(obj, skip=()) -> dict[str, Any]:
    """An object's attributes as plain Python values."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
            for k, v in obj.attrs.items() if k not in skip}


def describe(path: str | Path) -> dict[str, Any]:
    """Root attributes and the groups present, for ``landscape info``."""
    with open_file(path, "r") as f, damaged_as_error(path):
        return {"attrs": attrs_of(f), "groups": list(f.keys())}


"""Durable commits: a change to a landscape file is made in memory and published whole, or not at all.

HDF5 has no journal, and it reports some failed writes only when it flushes
its caches at close, where h5py can only print them (a full disk then left
files whose last commit had silently lost data, and processes that crashed).
So no HDF5 call here ever writes to a disk: :func:`commit` opens the file's
bytes as an in-memory HDF5 image (the core driver without a backing store),
the change is made there, and :func:`write_durably` writes the finished image
with plain system calls, each of which raises on failure: to a temporary name
beside the file, fsynced, read back and compared, then renamed over the file
and the directory fsynced. Any failure leaves the file exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
from pathlib import Path

import h5py
from h5py import h5f, h5p

from ..errors import one_line
from .format import StoreError, check_format, drop_analysis, real, temporary

_names = itertools.count()  # in-memory files need names unique within the process
BLOCK = 1 << 20  # the in-memory file grows in blocks of this many bytes


def full(e: OSError) -> bool:
    """Whether ``e`` says the disk (or the user's quota) is full."""
    return e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e)


@contextlib.contextmanager
def write_errors(path: Path, kept: str | None = None):
    """A full disk, a read-only file system or a missing permission: one line naming ``path`` and what is kept.

    ``kept`` says what survives the failure; by default the file at ``path``
    is unchanged (and holds every result committed before), or was never made.
    """
    try:
        yield
    except OSError as e:
        if full(e) or e.errno in (errno.EROFS, errno.EACCES, errno.EIO, errno.EPERM, errno.EFBIG):
            why = "no space left on the device" if full(e) else e.strerror
            path = Path(path)
            copy = re.fullmatch(r"\.(.+)\.new", path.name)  # the --overwrite copy (store.staging)
            if copy:
                path, kept = path.with_name(copy.group(1)), kept or (
                    f"the file is unchanged; its --overwrite copy {path.name} keeps every result finished before; "
                    "free space and rerun the same command to resume")
            if kept is None:
                kept = ("the file is unchanged and keeps every result finished before; free space and rerun the "
                        "same command to resume" if path.exists() else "nothing was written")
            raise StoreError(f"{path}: cannot write ({why}); {kept}") from None
        raise


def in_memory(data: bytes | None, path: Path) -> h5py.File:
    """An HDF5 file held in memory only: a copy of the image ``data``, or a new empty file (``None``).

    ``path`` names the file in errors. Nothing written to it reaches a disk
    until :func:`image` is handed to :func:`write_durably`.
    """
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_EARLIEST, h5f.LIBVER_LATEST)  # h5py's default
    fapl.set_fapl_core(block_size=BLOCK, backing_store=False)
    name = f"{path}#memory-{next(_names)}".encode()
    if data is None:
        return h5py.File(h5f.create(name, h5f.ACC_TRUNC, fapl=fapl))
    try:
        fapl.set_file_image(data)
        f = h5py.File(h5f.open(name, h5f.ACC_RDWR, fapl=fapl))
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {one_line(e)}") from None
    check_format(f, path, shapes=False)  # (closes f when it refuses it; the opener checked the shapes)
    return f


def image(f: h5py.File) -> bytes:
    """The complete bytes of the in-memory file ``f`` (flushed first)."""
    f.flush()
    return f.id.get_file_image()


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # a write that makes no progress is a full disk that did not say so
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _reads_back(path: Path, data: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(data) + 1) == data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` left by processes of this machine that were killed mid-write."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp-(\d+)")
    for p in path.parent.iterdir():
        m = pattern.fullmatch(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            p.unlink(missing_ok=True)


def write_durably(path: Path, data: bytes, mode_of: Path | None = None) -> None:
    """Make ``data`` the content of ``path`` in one step that either completes or changes nothing.

    Written under :func:`temporary` with checked system calls, fsynced and
    closed, read back and compared, given the permissions of the file it
    replaces (or of ``mode_of``), renamed over ``path``, and the directory
    fsynced. Raises ``OSError`` on any failure, after removing the temporary.
    """
    path = real(path)
    tmp = temporary(path)
    remove_dead_temporaries(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not _reads_back(tmp, data):
            raise OSError(errno.EIO, f"{tmp} does not read back as written")
        template = path if path.exists() else mode_of
        if template is not None and template.exists():
            shutil.copymode(template, tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def publish(src: Path, path: Path) -> None:
    """Move the finished file ``src`` onto ``path`` durably: fsync the file, rename, fsync the directory.

    The file keeps the permissions of the one it replaces.
    """
    path = real(path)
    with write_errors(path):
        if path.exists():
            shutil.copymode(path, src)
        _fsync(src)
        os.replace(src, path)
        _fsync(path.parent)


@contextlib.contextmanager
def commit(path: str | Path, new: bool = False, source: Path | None = None):
    """Change ``path`` as one atomic step; yields the h5py file to change (held in memory).

    The change is made to an in-memory copy of ``path`` (an empty file with
    ``new``; a copy of ``source`` instead of ``path`` when given), which
    replaces ``path`` on disk (:func:`write_durably`) only when the block
    ends without error. A kill, a full disk or an exception at any moment
    leaves ``path`` exactly as it was.
    """
    path = real(path)
    source = source or (None if new else path)
    with write_errors(path):
        data = source.read_bytes() if source is not None and source.exists() else None
    f = in_memory(data, path)
    try:
        yield f
        finished = image(f)
    finally:
        f.close()
    with write_errors(path):
        write_durably(path, finished)


def drop_groups(path: str | Path, names: list[str]) -> None:
    """Delete the groups ``names`` (those present) from the file at ``path``, in one commit."""
    with commit(path) as f:
        drop_analysis(f)
        for name in names:
            if name in f:
                del f[name]

"""Staging: how ``--overwrite`` builds the replacement of an output file beside it, resumably.

The replacement grows in ``.NAME.new`` (a copy of the file, or an empty file) until it is complete, and then
takes the file's place in one rename (:func:`publish_staging`); until then the old file stays readable. A record
``.NAME.new.from`` says which state of the file (inode, time, size) and which members the staging file was made
for, so an interrupted ``--overwrite`` run resumes it, and a stale one is started afresh.
"""

from __future__ import annotations

import os
from pathlib import Path

from .durable import commit, publish, write_durably, write_errors
from .format import StoreError, open_file, real, record_of, staging, to_json


def _signature(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def stage(path: str | Path, copy: bool, members: list[str] | None = None) -> Path:
    """Start building a replacement of ``path`` in its staging file (a copy of ``path`` with ``copy``).

    ``path`` must be a landscape file (anything else is never replaced). A
    record beside the staging file says which state of ``path`` it replaces
    (inode, time, size) and for which ``members``, so :func:`stale_staging`
    can tell when it no longer fits.
    """
    path, work = real(path), staging(path)
    with open_file(path, "r", shapes=False):  # a file damaged in its shapes is what --overwrite replaces
        pass
    with commit(work, new=not copy, source=path if copy else None):
        pass
    with write_errors(path):
        write_durably(record_of(path), to_json({"from": _signature(path), "members": members or []}).encode())
    return work


def stale_staging(path: str | Path, members: list[str] | None = None) -> bool:
    """Whether the staging file of ``path`` is missing, or was made for another state of ``path`` or other members."""
    path, record = real(path), record_of(path)
    if not staging(path).exists() or not record.exists():
        return True
    return record.read_text() != to_json({"from": _signature(path), "members": members or []})


def staged(path: str | Path, copy: bool, members: list[str] | None, prepare):
    """:func:`stage` a replacement of ``path`` and return ``prepare()`` (which readies it). When ``prepare``
    refuses it (``StoreError``: another task, say), the fresh staging file, which holds nothing new yet, is
    removed, and the error names ``path``, not the staging file."""
    stage(path, copy, members)
    try:
        return prepare()
    except StoreError as e:
        discard_staging(path)
        raise StoreError(str(e).replace(str(staging(path)), str(real(path)))) from None


def discard_staging(path: str | Path) -> None:
    """Remove the staging file of ``path`` and its record."""
    staging(path).unlink(missing_ok=True)
    record_of(path).unlink(missing_ok=True)


def publish_staging(path: str | Path) -> None:
    """The finished replacement of ``path`` takes its place; its record goes."""
    publish(staging(path), path)
    record_of(path).unlink(missing_ok=True)

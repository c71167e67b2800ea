"""Shards: which part of a scan or sweep one batch task computes, and where it writes it.

Shard ``i`` of ``n`` takes every n-th item starting at ``i`` (interleaved, so each
shard gets small and large norms alike). ``--shard auto`` finds ``i`` and ``n``
from a Slurm job array or an MPI launcher.

>>> parse_shard("3/8")
(3, 8)
>>> shard_path("runs/scan.h5", 3, 8)
PosixPath('runs/scan.shard-0003-of-0008.h5')
>>> shard_items(list(range(10)), 1, 4)
[1, 5, 9]
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
MPI_VARS = (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"), ("PMIX_RANK", "PMIX_SIZE"),
            ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))
PATTERN = re.compile(r"^(?P<stem>.*)\.shard-(?P<i>\d+)-of-(?P<n>\d+)$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; raises ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m:
        raise ValueError(f"--shard {spec!r}: expected I/N (for example 0/8) or auto")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise ValueError(f"--shard {spec!r}: need 0 <= I < N")
    return i, n


def from_environment(env=None) -> tuple[int, int, str]:
    """``(index, count, source)`` from Slurm array variables or an MPI launcher.

    Slurm arrays need not start at 0 and may have a step (``--array=5-25:10``):
    the index is ``(ID - MIN) / STEP``. Raises ``ValueError`` naming what was
    looked for when neither is present.
    """
    env = os.environ if env is None else env

    def integer(name, default=None):
        text = env.get(name, default)
        try:
            return int(text)
        except (TypeError, ValueError):
            raise ValueError(f"--shard auto: {name}={text!r} is not an integer") from None

    if all(v in env for v in SLURM_VARS):
        tid, tmin, count = (integer(v) for v in SLURM_VARS)
        step = integer("SLURM_ARRAY_TASK_STEP", env.get("SLURM_ARRAY_TASK_STEP") or "1")
        if step < 1 or count < 1 or (tid - tmin) % step:
            raise ValueError(f"--shard auto: inconsistent Slurm array (task {tid}, min {tmin}, step {step}, "
                             f"count {count})")
        index = (tid - tmin) // step
        if not 0 <= index < count:
            raise ValueError(f"--shard auto: Slurm array task {tid} (min {tmin}, step {step}) is outside the "
                             f"array's {count} tasks")
        return index, count, "slurm"
    for rank_var, size_var in MPI_VARS:
        if rank_var in env and size_var in env:
            rank, size = integer(rank_var), integer(size_var)
            if size < 1 or not 0 <= rank < size:
                raise ValueError(f"--shard auto: MPI rank {rank} of size {size} ({rank_var}, {size_var}) is invalid")
            return rank, size, "mpi"
    try:
        from mpi4py import MPI  # noqa: PLC0415 -- optional extra

        comm = MPI.COMM_WORLD
        if comm.Get_size() > 1:
            return comm.Get_rank(), comm.Get_size(), "mpi"
    except ImportError:
        pass
    raise ValueError("--shard auto: found no Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, "
                     "SLURM_ARRAY_TASK_COUNT) and no MPI launcher (OMPI_COMM_WORLD_RANK, PMI_RANK, PMIX_RANK, "
                     "or mpi4py with more than one rank); give --shard I/N")


def resolve(spec: str | None, env=None) -> tuple[int, int, str] | None:
    """The shard for ``--shard SPEC`` (None when not sharded)."""
    if spec is None:
        return None
    if spec.strip() == "auto":
        return from_environment(env)
    i, n = parse_shard(spec)
    return i, n, "flag"


def shard_items(items: list, index: int, count: int) -> list:
    """Every ``count``-th item starting at ``index``."""
    return items[index::count]


def shard_path(out: str | Path, index: int, count: int) -> Path:
    """The shard file for ``--out``: ``scan.h5`` -> ``scan.shard-0003-of-0008.h5``."""
    out = Path(out)
    width = max(4, len(str(count - 1)))
    return out.with_name(f"{out.stem}.shard-{index:0{width}d}-of-{count:0{width}d}{out.suffix}")


def shard_of(path: str | Path) -> tuple[str, int, int] | None:
    """``(stem, index, count)`` from a shard file's name, or None."""
    m = PATTERN.match(Path(path).stem)
    return (m.group("stem"), int(m.group("i")), int(m.group("n"))) if m else None

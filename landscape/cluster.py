"""Running on a cluster: which shard a batch task computes, Slurm submission, MPI, and termination.

Shard ``i`` of ``n`` takes every n-th item starting at ``i`` (interleaved, so each
shard gets small and large norms alike). ``--shard auto`` finds ``i`` and ``n``
from a Slurm job array or an MPI launcher. ``sbatch_commands`` writes the job
array and its merge job; ``mpi_merge`` lets rank 0 join the shards of an MPI
run; ``Termination`` turns a scheduler's SIGTERM into a clean stop.

>>> parse_shard("3/8")
(3, 8)
>>> shard_path("runs/scan.h5", 3, 8)
PosixPath('runs/scan.shard-0003-of-0008.h5')
>>> shard_items(list(range(10)), 1, 4)
[1, 5, 9]
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from .errors import BadInput, bad_input, one_line

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


# ---------------------------------------------------------------- Slurm

def sbatch_commands(what: str, args: list[str], out: str, tasks: int, throttle: int | None = None,
                    settings: dict[str, str | int | None] | None = None, sbatch: str = "sbatch") -> list[list[str]]:
    """The two sbatch command lines: the job array running ``landscape WHAT ARGS --shard auto``, then the
    merge job (its dependency ``{array_job}`` filled in by :func:`submit`).

    ``settings`` are ``#SBATCH`` options by name (``time``, ``partition``, ``cpus_per_task``, ``mem``, ``account``).
    """
    python = shlex.quote(sys.executable)
    common = [f"--{k.replace('_', '-')}={v}" for k, v in (settings or {}).items() if v]
    array = f"0-{tasks - 1}" + (f"%{throttle}" if throttle else "")
    stem = Path(out)
    log_dir = stem.parent
    task_cmd = " ".join([python, "-m", "landscape", what, *map(shlex.quote, args), "--shard", "auto", "--quiet"])
    width = max(4, len(str(tasks - 1)))
    pattern = f"{stem.stem}.shard-*-of-{tasks:0{width}d}{stem.suffix}"
    merge_cmd = " ".join([python, "-m", "landscape", "merge", shlex.quote(str(log_dir / pattern)),
                          "-o", shlex.quote(out)])
    first = [sbatch, "--parsable", f"--job-name=landscape-{what}", f"--array={array}", *common,
             f"--output={log_dir / (stem.stem + '.shard-%a.log')}", f"--wrap={task_cmd}"]
    second = [sbatch, "--parsable", "--job-name=landscape-merge", "--dependency=afterok:{array_job}", *common,
              f"--output={log_dir / (stem.stem + '.merge.log')}", f"--wrap={merge_cmd}"]
    return [first, second]


def submit(commands: list[list[str]]) -> list[str]:
    """Run the sbatch commands in order, the array's job id into the next; the job ids.

    Raises ``ValueError`` with one line when sbatch is missing or refuses.
    """
    ids: list[str] = []
    for cmd in commands:
        cmd = [c.replace("{array_job}", ids[0]) if ids else c for c in cmd]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise ValueError(f"submit: {cmd[0]!r} not found; is this a Slurm login node?") from None
        if r.returncode != 0:
            raise ValueError(f"submit: sbatch failed: {one_line(r.stderr)}")
        ids.append(r.stdout.strip().split(";")[0])
    return ids


def launch(what: str, args: list[str], out: str, tasks: int, throttle: int | None, settings: dict,
           sbatch: str = "sbatch", dry_run: bool = False) -> int:
    """``landscape submit``: submit the job array and its merge job (``dry_run``: print their sbatch lines)."""
    commands = sbatch_commands(what, args, out, tasks, throttle, settings, sbatch)
    if dry_run:
        for cmd in commands:
            print(" ".join(shlex.quote(c) for c in cmd))
        return 0
    with bad_input():
        ids = submit(commands)
    print(f"array job {ids[0]} ({tasks} tasks), merge job {ids[1]} (after the array succeeds)")
    return 0


def check_sharded(what: str, cfg, out: str) -> None:
    """Validate a sharded command's settings now, not on the cluster: its task, for a scan its grid, and the file
    the shards are merged into (:func:`check_merged`). ``BadInput`` with one line."""
    from .config.grid import norm_groups, parse_norms
    from .tasks import get_task

    with bad_input():
        if what == "scan" and norm_groups(cfg.norms) is None:  # a two-norm grid's specs were checked by the config
            parse_norms(cfg.norms)
        task = get_task(cfg.task, cfg.task_options)
    check_merged(out, task)


def check_merged(out: str, task) -> None:
    """Refuse, before any shard computes, a merge target ``out`` that the merge would refuse after all of them:
    in a directory that does not exist, or an existing file that is no landscape file of this task and data."""
    from . import store

    path = Path(out)
    if not path.parent.is_dir():
        raise BadInput(f"{out}: directory {str(path.parent)!r} does not exist")
    if path.exists():
        store.same_task(path, task)


# ---------------------------------------------------------------- MPI

def mpi_merge(out: str, shard: tuple[int, int, str], quiet: bool) -> None:
    """Under MPI with mpi4py: wait for every rank, then rank 0 merges the shards into ``out``.

    Every rank reaches both barriers, and a failed merge is broadcast so all ranks
    exit with the same one-line error (``ValueError``) instead of waiting for ever.
    """
    try:
        from mpi4py import MPI
    except ImportError:
        if not quiet:
            print(f"no mpi4py: merge the shards yourself with `landscape merge ... -o {out}`", file=sys.stderr)
        return
    from .store import merge, writer_lock

    comm = MPI.COMM_WORLD
    comm.Barrier()
    error = None
    if shard[0] == 0:
        paths = [p for p in (shard_path(out, i, shard[1]) for i in range(shard[1])) if p.exists()]
        try:
            with writer_lock(out):
                merge(paths, out)
        except Exception as e:  # noqa: BLE001 -- every rank must reach the broadcast, whatever went wrong
            error = one_line(e)
        if error is None and not quiet:
            print(f"rank 0 merged {len(paths)} shards into {out}")
    error = comm.bcast(error, root=0)
    comm.Barrier()
    if error is not None:
        raise ValueError(error)


# ---------------------------------------------------------------- termination

class Termination:
    """SIGTERM (a scheduler's time limit) handled so that no file is left half-written.

    ``immediate``: exit at once unless inside ``critical()`` (then right after it);
    otherwise only set ``requested`` and let the loop checkpoint and stop.
    """

    def __init__(self, immediate: bool):
        self.immediate, self.requested, self.signum, self.depth = immediate, False, 0, 0

    def _handler(self, signum, frame):
        self.requested, self.signum = True, signum
        if self.immediate and self.depth == 0:
            self._exit()

    def _exit(self):
        print("landscape: terminated; what finished is in the file, rerun the same command to resume",
              file=sys.stderr)
        raise SystemExit(128 + self.signum)

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)
        return False

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.requested and self.immediate and self.depth == 0:
            self._exit()

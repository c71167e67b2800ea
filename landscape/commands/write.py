"""What each ``landscape`` command does, given validated settings: the CLI parses, these run.

Each command is a function of explicit arguments that returns an exit code.
Bad input is raised as ``BadInput`` (``ConfigError``, ``StoreError``,
``TaskError``, or a validation message converted by ``bad_input()``) with a
one-line message; ``landscape.cli`` prints it and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import cluster
from ..config.settings import ScanConfig, TrainConfig
from ..errors import BadInput, bad_input, check_output


def _plan(cfg, shard_spec: str | None, make_plan, auto_chunk, quiet: bool = False):
    """Resolve the task, the plan, the chunk size and the shard; print the plan's notes (unless ``quiet``)."""
    from ..engine import fused
    from ..tasks import get_task

    apply_threads(cfg)
    why = fused.unavailable(cfg.device) if cfg.compile == "on" else None
    if why:
        raise BadInput(f"--compile on: {why}; use --compile auto or off")
    with bad_input():
        task = get_task(cfg.task, cfg.task_options)
        cfg.task_options = task.options
    with bad_input(f"task {cfg.task!r}: "):
        plan = make_plan(cfg, task)
        size = cfg.chunk or auto_chunk(plan)
    with bad_input():
        shard = cluster.resolve(shard_spec)
    if not quiet:
        for line in plan.notes:
            print(f"landscape: {line}", file=sys.stderr)
    return plan, size, shard


def _stepper(module, cfg, plan, quiet: bool, size: int):
    """The step function of ``module`` (scanner or trainer); deciding whether to compile it runs the task's model
    (its flop are counted), so an error there is the task's."""
    with bad_input(f"task {cfg.task!r}: "):
        return module.stepper(plan, _note(quiet), size=size)


def apply_threads(cfg) -> None:
    """Set torch's thread count from ``cfg.threads``, else ``SLURM_CPUS_PER_TASK`` or ``OMP_NUM_THREADS``; the
    count in force is written back to ``cfg`` (and so stored with the run's execution settings)."""
    import os

    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cfg.threads is not None and cpus and cfg.threads > cpus:
        raise BadInput(f"--threads must be at most {cpus} (the CPUs this process may run on), got {cfg.threads}")
    if cfg.threads is None:
        for var in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
            if os.environ.get(var, "").strip().isdigit() and int(os.environ[var]) > 0:
                cfg.threads = int(os.environ[var])
                break
    if cfg.threads is not None and torch.get_num_threads() != cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.threads = torch.get_num_threads()


def _mpi_merge(out: str, shard, quiet: bool) -> None:
    """Under MPI, every rank meets the others and rank 0 merges the shards into ``out``."""
    if shard is not None and shard[2] == "mpi":
        with bad_input():
            cluster.mpi_merge(out, shard, quiet)


def _bar(total: int, desc: str, quiet: bool):
    from tqdm.auto import tqdm  # a widget in Jupyter, text in a terminal

    return tqdm(total=total, unit="step", unit_scale=True, desc=desc, smoothing=0.1, disable=True if quiet else None)


def _note(quiet: bool):
    """Where a run's notes (a compilation's time) go: above the progress bar, or nowhere with --quiet."""
    from tqdm.auto import tqdm

    return None if quiet else tqdm.write


def scan(cfg: ScanConfig, out: str, shard_spec: str | None = None, overwrite: bool = False, quiet: bool = False,
         table: bool = True) -> int:
    """``landscape scan``; ``table``: print the summary table and the file written (unless ``quiet``), as
    :func:`train`'s ``table``."""
    from ..engine import worker
    from .. import report, store
    from ..experiments import scan as scan_mod

    check_output(out)
    quiet_end = quiet or not table
    if cfg.branch != "independent":
        return scan_branches(cfg, out, shard_spec, overwrite, quiet, table)
    if cfg.from_trajectory is not None:
        raise BadInput("--from-trajectory starts the down branch: use it with --branch down or both")
    plan, size, shard = _plan(cfg, shard_spec, scan_mod.make_plan, scan_mod.auto_chunk, quiet)
    if shard is not None:
        cluster.check_merged(out, plan.task)
    path = Path(out if shard is None else cluster.shard_path(out, shard[0], shard[1]))
    shard_ix = shard and shard[:2]
    if shard is not None and shard[0] >= plan.n_points:
        print(f"shard {shard[0]}/{shard[1]} has no points (the scan has {plan.n_points}); nothing to do",
              file=sys.stderr)
        _mpi_merge(out, shard, quiet)
        return 0
    # One writer per output; the SIGTERM handler is in place before the file exists.
    created, repaired = False, []
    step = _stepper(scan_mod, cfg, plan, quiet, size)  # before the file exists: it runs the model
    with bad_input(), store.writer_lock(path), cluster.Termination(immediate=True) as term:
        with term.critical():
            if overwrite and path.exists():  # the old file stays readable until the new one is complete
                work, keep = store.staging(path), store.holds_task(path, plan.task)
                todo = None
                if work.exists() and not (keep and store.stale_staging(path, ["scan"])):
                    try:
                        todo = store.prepare_scan(work, cfg, plan, shard=shard_ix, repaired=repaired)
                    except store.StoreError:  # a staging file of another attempt
                        todo = None
                if todo is None and keep:  # the same task: the rest of the file (runs, branches, phases) is kept
                    todo = store.staged(path, True, ["scan"], lambda: (
                        store.drop_groups(work, [store.GROUPS["independent"]]),
                        store.prepare_scan(work, cfg, plan, shard=shard_ix))[1])
                elif todo is None:  # another task: the replacement starts empty
                    todo = store.staged(path, False, None,
                                        lambda: store.prepare_scan(work, cfg, plan, overwrite=True, shard=shard_ix))
            else:
                work = path
                created = not path.exists()
                todo = store.prepare_scan(path, cfg, plan, overwrite=overwrite, shard=shard_ix, repaired=repaired)
        mine = plan.n_points if shard is None else len(range(shard[0], plan.n_points, shard[1]))
        if mine - len(todo) and not quiet:
            print(f"resuming {path}: {mine - len(todo)} of {mine} points already done", file=sys.stderr)
        if sum(repaired):
            print(f"{path}: {sum(repaired)} point{'s' if sum(repaired) > 1 else ''} marked done but incomplete "
                  "(non-finite or missing losses, saved parameters or history): recomputed", file=sys.stderr)
        bar = _bar(len(todo) * cfg.steps, "scan", quiet)
        for i, chunk in enumerate(worker.chunks(todo, size)):
            try:
                with bad_input(f"task {cfg.task!r}: "):
                    result = scan_mod.run_chunk(plan, chunk, on_progress=bar.update, step=step)
            except BadInput:
                if i == 0 and work == path and created:
                    path.unlink(missing_ok=True)  # nothing finished: leave nothing that blocks a corrected rerun
                raise
            with term.critical():
                store.write_chunk(work, result, cfg.restarts)
        if work != path:
            store.publish_staging(path)
    bar.close()
    _mpi_merge(out, shard, quiet)
    if not quiet_end and shard is None:
        print(report.summary_table(store.read_scan(path)))
    if not quiet_end:
        print(f"wrote {path}")
    return 0


def scan_branches(cfg: ScanConfig, out: str, shard_spec: str | None = None, overwrite: bool = False,
                  quiet: bool = False, table: bool = True) -> int:
    """``landscape scan --branch down|up|both``: continuation branches (``landscape.experiments.branches``), sharded by
    restart; ``--overwrite`` recomputes them in a copy of the file (the rest of it kept) that replaces it when
    complete."""
    from ..experiments import branches, scan as scan_mod
    from .. import report, store

    plan, size, shard = _plan(cfg, shard_spec, scan_mod.make_plan, scan_mod.auto_chunk, quiet)
    if len(plan.norm) < 2:
        raise BadInput(f"--branch {cfg.branch}: a continuation branch needs two or more norms, got "
                       f"{len(plan.norm)} (--norms {cfg.norms})")
    if shard is not None:
        cluster.check_merged(out, plan.task)
    path = Path(out if shard is None else cluster.shard_path(out, shard[0], shard[1]))
    if shard is not None and shard[0] >= cfg.restarts:
        print(f"shard {shard[0]}/{shard[1]} has no restarts (a branch is split by restart and has "
              f"{cfg.restarts}); nothing to do", file=sys.stderr)
        _mpi_merge(out, shard, quiet)
        return 0
    names = branches.names(cfg.branch)
    step = _stepper(scan_mod, cfg, plan, quiet, size)
    with bad_input(), store.writer_lock(path):
        origin = branches.origin(cfg, plan, Path(out)) if cfg.from_trajectory is not None else None
        work = path
        if overwrite and path.exists():  # the old file stays readable until the new one is complete
            work, tag = store.staging(path), [f"branch:{b}" for b in names]
            if store.stale_staging(path, tag) or not _resumable(store, work, cfg, plan, shard, names):
                store.staged(path, True, tag, lambda: (store.same_task(work, plan.task),
                                                       store.drop_groups(work, [store.GROUPS[b] for b in names])))
        done = branches.run(cfg, plan, size, work, origin, lambda total, desc: _bar(total, desc, quiet), quiet,
                            shard and shard[:2], step)
        if work != path:
            store.publish_staging(path)
    _mpi_merge(out, shard, quiet)
    if not quiet and table:
        if shard is None:
            for b in done:
                print(f"{b} branch:")
                print(report.summary_table(store.read_scan(path, b)))
        print(f"wrote {path}")
    return 0


def _resumable(store, work: Path, cfg, plan, shard, names) -> bool:
    """Whether an ``--overwrite`` staging file holds these very branches (then it is resumed, not restarted)."""
    try:
        for b in names:
            store.prepare_scan(work, cfg, plan, shard=shard and shard[:2], branch=b)
        return True
    except store.StoreError:
        return False


def train(cfg: TrainConfig, out: str, shard_spec: str | None = None, overwrite: bool = False,
          quiet: bool = False, table: bool = True, also: dict | None = None) -> int:
    """``landscape train``; ``table``: print the trajectories' table at the end; ``also``: further configs to
    record in the file's root ``config`` (``{command: config}``, as ``landscape phases`` does)."""
    from .. import report, store
    from ..experiments import train as train_mod
    from ..store.train_state import TrainState

    check_output(out)
    plan, size, shard = _plan(cfg, shard_spec, train_mod.make_plan, train_mod.members_per_chunk, quiet)
    if cfg.engine == "loop":
        size = 1  # separate runs, one trajectory after the other
    path = out
    if shard is not None:
        cluster.check_merged(out, plan.task)
        path = cluster.shard_path(out, shard[0], shard[1])
        plan.members = cluster.shard_items(plan.members, shard[0], shard[1])
        if not plan.members:
            print(f"shard {shard[0]}/{shard[1]} has no trajectories (the sweep has fewer members)", file=sys.stderr)
            _mpi_merge(out, shard, quiet)
            return 0
    path = Path(path)
    names = [m.name for m in plan.members]
    created, repaired = False, []
    # One writer per output; the SIGTERM handler is in place before the file exists.
    step = _stepper(train_mod, cfg, plan, quiet, size)  # before the file exists: it runs the model
    with bad_input(), store.writer_lock(path), cluster.Termination(immediate=False) as term:
        if overwrite and path.exists():  # the old file stays readable until the new one is complete
            work, states = store.staging(path), None
            if not store.stale_staging(path, names):  # made from this very file, for these trajectories
                try:
                    states = store.prepare_trajectories(work, cfg, plan, also=also, repaired=repaired)
                except store.StoreError:  # other settings than this attempt's
                    states = None
            if states is None:  # a copy of the file whose named trajectories are replaced
                states = store.staged(path, True, names,
                                      lambda: store.prepare_trajectories(work, cfg, plan, overwrite=True, also=also))
        else:
            work, created = path, not path.exists()
            states = store.prepare_trajectories(path, cfg, plan, also=also, repaired=repaired)
        if repaired:
            print(f"{path}: {len(repaired)} trajectory checkpoint{'s' if len(repaired) > 1 else ''} or log"
                  f"{'s' if len(repaired) > 1 else ''} incomplete, recomputed from an earlier step: "
                  + ", ".join(f"{name} from step {step}" for name, step in repaired), file=sys.stderr)
        saved = []
        groups: dict[int, list] = {}  # members by the step they resume from; finished ones are skipped
        for m in plan.members:
            start = states[m.name].step if states[m.name] is not None else 0
            if start < cfg.steps:
                groups.setdefault(start, []).append(m)
        skipped = len(plan.members) - sum(len(g) for g in groups.values())
        if skipped and not quiet:
            print(f"{path}: {skipped} of {len(plan.members)} trajectories already finished", file=sys.stderr)
        total = sum((cfg.steps - start) * ((len(g) + size - 1) // size) for start, g in groups.items())
        bar = _bar(total, "train", quiet)
        for start, part in [(start, group[i:i + size]) for start, group in sorted(groups.items())
                            for i in range(0, len(group), size)]:
            state = (train_mod.fresh_state(plan, part) if start == 0
                     else TrainState.stack([states[m.name] for m in part]))
            write = train_mod.saver(work, plan, part, term.critical)
            try:
                with bad_input(f"task {cfg.task!r}: "):
                    train_mod.run(plan, part, state, step=step,
                                  on_checkpoint=lambda st, log: (write(st, log), saved.append(1)),
                                  on_progress=bar.update, should_stop=lambda: term.requested)
            except BadInput:  # nothing that blocks a corrected rerun: this run's trajectories without a checkpoint go
                if created and not saved:
                    path.unlink(missing_ok=True)
                else:
                    store.drop_unfinished(work, [m.name for m in plan.members if states[m.name] is None])
                raise
            if term.requested:
                break
        if work != path and not term.requested:
            store.publish_staging(path)
    bar.close()
    if term.requested:
        print(f"landscape: terminated; checkpoint written to {work}, rerun the same command to resume",
              file=sys.stderr)
        return 128 + term.signum
    _mpi_merge(out, shard, quiet)
    if not quiet and table:
        print(report.trajectory_table(store.read_trajectories(path), [m.name for m in plan.members]))
        print(f"wrote {path}")
    return 0


def tasks() -> int:
    from ..tasks import describe

    for name, text in describe():
        print(f"{name:16s} {text}")
    print(f"{'pkg.module:func':16s} your own factory returning landscape.tasks.Task")
    return 0


def metrics_list() -> int:
    from .. import metrics

    rows = [(m.name, "always" if m.always else "default" if m.default else "on request", m.tasks, m.description)
            for m in metrics.registered()]
    print(f"{'metric':<22} {'logged':<10} {'applies to':<26} description")
    for name, logged, tasks, desc in rows:
        print(f"{name:<22} {logged:<10} {tasks:<26} {desc}")
    print("train --metrics NAME[,NAME] picks the optional ones (the 'always' ones are logged in any case); "
          "default: every 'default' metric that applies to the task")
    return 0


def merge(patterns: list[str], out: str, allow_partial: bool = False) -> int:
    import glob

    from ..experiments import phases
    from .. import store
    from ..store import merge as merge_files

    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise BadInput(f"merge: no file matches {pattern!r}")
        paths += found
    check_output(out)
    with bad_input(), store.writer_lock(out), cluster.Termination(immediate=True) as term, term.critical():
        result = merge_files(paths, out, allow_partial=allow_partial)
    print(f"merged {len(result.shards)} shards into {out}: {result.points} scan points, "
          f"{result.trajectories} trajectories")
    if not result.complete:
        print(f"landscape: warning: {result.describe_missing()} (recorded in the file's 'missing' attribute)",
              file=sys.stderr)
    with bad_input():
        grid = phases.stored_config(out)
        if grid is not None:  # a sharded `landscape phases`: classify the merged grid
            phases.publish(out, grid)
    return 0

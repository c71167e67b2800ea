"""What each ``landscape`` command does, given validated settings: the CLI parses, these run.

Each command is a function of explicit arguments that returns an exit code.
Bad input is raised as ``BadInput`` (``ConfigError``, ``StoreError``,
``TaskError``, or a validation message converted by ``bad_input()``) with a
one-line message; ``landscape.cli`` prints it and exits 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from . import cluster
from .config import ScanConfig, TrainConfig
from .plain import BadInput, bad_input, to_json


def _plan(cfg, shard_spec: str | None, make_plan, auto_chunk):
    """Resolve the task, the plan, the chunk size and the shard."""
    from . import fused
    from .tasks import get_task

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
        return plan, size, cluster.resolve(shard_spec)


def _mpi_merge(out: str, shard, quiet: bool) -> None:
    """Under MPI, every rank meets the others and rank 0 merges the shards into ``out``."""
    if shard is not None and shard[2] == "mpi":
        with bad_input():
            cluster.mpi_merge(out, shard, quiet)


def _bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", unit_scale=True, desc=desc, smoothing=0.1, disable=True if quiet else None)


def _note(quiet: bool):
    """Where a run's notes (a compilation's time) go: above the progress bar, or nowhere with --quiet."""
    from tqdm import tqdm

    return None if quiet else tqdm.write


def scan(cfg: ScanConfig, out: str, shard_spec: str | None = None, overwrite: bool = False, quiet: bool = False) -> int:
    from . import loop, report, scan as scan_mod, store

    if cfg.branch != "independent":
        return scan_branches(cfg, out, shard_spec, overwrite, quiet)
    if cfg.from_trajectory is not None:
        raise BadInput("--from-trajectory starts the down branch: use it with --branch down or both")
    plan, size, shard = _plan(cfg, shard_spec, scan_mod.make_plan, scan_mod.auto_chunk)
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
        step = scan_mod.stepper(plan, _note(quiet), size)
        for i, chunk in enumerate(loop.chunks(todo, size)):
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
    if not quiet and shard is None:
        print(report.summary_table(store.read_scan(path)))
    if not quiet:
        print(f"wrote {path}")
    return 0


def scan_branches(cfg: ScanConfig, out: str, shard_spec: str | None = None, overwrite: bool = False,
                  quiet: bool = False) -> int:
    """``landscape scan --branch down|up|both``: continuation branches (``landscape.branches``), sharded by
    restart; ``--overwrite`` recomputes them in a copy of the file (the rest of it kept) that replaces it when
    complete."""
    from . import branches, report, scan as scan_mod, store

    plan, size, shard = _plan(cfg, shard_spec, scan_mod.make_plan, scan_mod.auto_chunk)
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
    with bad_input(), store.writer_lock(path):
        origin = branches.origin(cfg, plan, Path(out)) if cfg.from_trajectory is not None else None
        work = path
        if overwrite and path.exists():  # the old file stays readable until the new one is complete
            work, tag = store.staging(path), [f"branch:{b}" for b in names]
            if store.stale_staging(path, tag) or not _resumable(store, work, cfg, plan, shard, names):
                store.staged(path, True, tag, lambda: (store.same_task(work, plan.task),
                                                       store.drop_groups(work, [store.GROUPS[b] for b in names])))
        done = branches.run(cfg, plan, size, work, origin, lambda total, desc: _bar(total, desc, quiet), quiet,
                            shard and shard[:2], scan_mod.stepper(plan, _note(quiet), size))
        if work != path:
            store.publish_staging(path)
    _mpi_merge(out, shard, quiet)
    if not quiet:
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
    from . import report, store, train as train_mod
    from .state import TrainState

    plan, size, shard = _plan(cfg, shard_spec, train_mod.make_plan, train_mod.members_per_chunk)
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
        step = train_mod.stepper(plan, _note(quiet), size=size)
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
            except BadInput:
                if created and not saved:
                    path.unlink(missing_ok=True)  # nothing finished: leave nothing that blocks a corrected rerun
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


def plot(file: str, out: str | None = None, names: str | None = None) -> int:
    from . import figures, plot as plot_mod, store
    from .status import Status

    fig_path = Path(out) if out else Path(file).with_suffix(".png")
    if fig_path.suffix.lower() not in plot_mod.FORMATS:
        raise BadInput(f"-o {fig_path}: figure format must be one of {', '.join(plot_mod.FORMATS)}")
    if not fig_path.parent.is_dir():
        raise BadInput(f"-o {fig_path}: directory {str(fig_path.parent)!r} does not exist")
    with bad_input():
        scan_data = store.read_scan(file)
        branches = list(store.read_branches(file).values())
        trajs = store.read_trajectories(file)
        result = store.read_analysis(file)
        meta = store.series_meta(file)
        grid = store.read_phases(file)
    if grid is not None and names is None:  # a phase diagram's runs are drawn as the diagram, or when named
        trajs = []
    if names is not None:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        if not wanted:
            raise BadInput("--trajectories: give one or more names separated by commas")
        known = [t["name"] for t in trajs]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise BadInput(f"{file}: no trajectory {', '.join(unknown)}; it has: {', '.join(known) or 'none'}")
        trajs = [t for t in trajs if t["name"] in wanted]
    trajs = [t for t in trajs if len(t["step"])]
    if scan_data is not None and not (scan_data["status"] == Status.DONE).any():
        scan_data = None  # nothing finished (all pending or diverged): no curve to draw
    branches = [b for b in branches if (b["status"] == Status.DONE).any()]
    if scan_data is None and branches:  # only continuation branches: the first is the landscape drawn
        scan_data, branches = branches[0], branches[1:]
    if scan_data is None and not trajs and grid is None:
        raise BadInput(f"{file}: holds no finished scan points and no logged trajectories to plot")
    for path in figures.write(fig_path, scan_data, branches, trajs, result, meta, grid):
        print(f"wrote {path}")
    return 0


def info(file: str, as_json: bool = False) -> int:
    from . import report, store

    with bad_input():
        desc = store.describe(file)
        scan_data = store.read_scan(file)
        branches = store.read_branches(file)
        trajs = store.read_trajectories(file)
        meta = store.series_meta(file)
        phases = store.read_phases(file)
    if as_json:
        data = {"attrs": desc["attrs"], "groups": desc["groups"], "trajectories": trajs}
        if scan_data is not None:
            data["scan"] = scan_data
        if branches:
            data["branches"] = branches
        print(to_json(data, indent=1, sort_keys=False))
        return 0
    print(report.info_text(file, desc, scan_data, trajs, meta, branches, phases))
    return 0


def tasks() -> int:
    from .tasks import describe

    for name, text in describe():
        print(f"{name:16s} {text}")
    print(f"{'pkg.module:func':16s} your own factory returning landscape.tasks.Task")
    return 0


def metrics_list() -> int:
    from . import metrics

    rows = [(m.name, "always" if m.always else "default" if m.default else "on request", m.tasks, m.description)
            for m in metrics.registered()]
    print(f"{'metric':<22} {'logged':<10} {'applies to':<26} description")
    for name, logged, tasks, desc in rows:
        print(f"{name:<22} {logged:<10} {tasks:<26} {desc}")
    print("train --metrics NAME[,NAME] picks the optional ones (the 'always' ones are logged in any case); "
          "default: every 'default' metric that applies to the task")
    return 0


def analyze(file: str, criteria: dict, accuracy: bool | None = None, as_json: bool = False,
            write: bool = True) -> int:
    from . import store

    with contextlib.ExitStack() as stack:
        if write:  # one writer: nothing may change the file between reading it and storing the result
            with bad_input():
                stack.enter_context(store.writer_lock(file))
        return _analyze(file, store, criteria, accuracy, as_json, write)


def _analyze(file, store, criteria, accuracy, as_json, write) -> int:
    from . import analysis, phases, report
    from .status import Status

    with bad_input():
        scan_data = store.read_scan(file)
        branches = store.read_branches(file)
        trajs = store.read_trajectories(file)
    if scan_data is not None and not (scan_data["status"] == Status.DONE).any():
        print(f"{file}: the scan has no finished points; analyzing the trajectories alone", file=sys.stderr)
        scan_data = None
    if scan_data is None and not trajs and not branches:
        raise BadInput(f"{file}: holds neither finished scan points nor trajectories to analyze")
    crit = analysis.Criteria(**{k: v for k, v in criteria.items() if v is not None}, accuracy=accuracy)
    result = analysis.analyze(scan_data, [t for t in trajs if len(t["step"])], crit, branches)
    data = analysis.to_dict(result)
    with bad_input():
        grid = phases.summary_of(file)  # a phase diagram's shares, boundaries and train-fraction fit, if any
    if grid is not None:
        data["phases"] = json.loads(to_json(grid[0]))
    if as_json:
        print(json.dumps(data, indent=1, allow_nan=False))
    else:
        print(report.analysis_report(result) + (f"\n\n{report.phases_report(*grid)}" if grid else ""))
    if write:
        with bad_input():
            store.write_analysis(file, data)
    return 0


def merge(patterns: list[str], out: str, allow_partial: bool = False) -> int:
    import glob

    from . import phases, store
    from .store import merge as merge_files

    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise BadInput(f"merge: no file matches {pattern!r}")
        paths += found
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

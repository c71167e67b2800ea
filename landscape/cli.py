"""The ``landscape`` command: argument parsing, validation at the boundary, and the commands.

No numerics here. Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from . import __version__
from . import shard as shard_mod
from .config import ScanConfig, TrainConfig, field_names, load_toml

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


@contextlib.contextmanager
def _as_usage_error(prefix: str = ""):
    """Errors raised by user input (values, task code, files) become one line and exit 2."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as e:  # our own validation messages say what was wrong
        raise UsageError(" ".join(str(e).split())) from None
    except Exception as e:  # noqa: BLE001 -- user-supplied task code can raise anything
        if not prefix:
            raise
        raise UsageError(f"{prefix}{type(e).__name__}: {' '.join(str(e).split())}") from None


class _Termination:
    """SIGTERM (a scheduler's time limit) handled so that no file is left half-written.

    ``immediate``: exit at once unless inside ``critical()`` (then right after it);
    otherwise only set ``requested`` and let the loop checkpoint and stop.
    """

    def __init__(self, immediate: bool):
        self.immediate, self.requested, self.signum, self.depth = immediate, False, 0, 0

    def _handler(self, signum, frame):
        self.requested, self.signum = True, signum
        if self.immediate and self.depth == 0:
            raise SystemExit(128 + signum)

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
            raise SystemExit(128 + self.signum)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {v}")
        return v
    return parse


def _nonneg_int(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"{name} must be 0 or more, got {v}")
        return v
    return parse


def _positive_float(name):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not v > 0 or v == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be a positive finite number, got {text!r}")
        return v
    return parse


def _float_list(name):
    def parse(text):
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} expects numbers separated by commas, got {text!r}") from None
        if not values or any(not np.isfinite(v) or v < 0 for v in values):
            raise argparse.ArgumentTypeError(f"{name} expects finite non-negative numbers, got {text!r}")
        return values
    return parse


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects integers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("--seeds is empty")
    return values


def _fraction(name):
    def parse(text):
        v = _positive_float(name)(text)
        if v > 1:
            raise argparse.ArgumentTypeError(f"{name} must be in (0, 1], got {text!r}")
        return v
    return parse


def _factor(name):
    def parse(text):
        v = _positive_float(name)(text)
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, got {text!r}")
        return v
    return parse


def _task_opt(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--task-opt expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


ENGINES = ("auto", "mlp", "vmap", "loop")  # landscape.ensemble.KERNELS, without importing torch


def _add_run_options(p: argparse.ArgumentParser, shard_help: str, unit: str) -> None:
    """Options that scan and train share: preset, task, device, engine, output file, progress, shard."""
    p.add_argument("--config", metavar="FILE.toml", help="preset whose values the flags override")
    p.add_argument("--task", help="built-in task or package.module:function (default teacher-student)")
    p.add_argument("--task-opt", type=_task_opt, action="append", metavar="KEY=VALUE",
                   help="task option, repeatable (e.g. p=97, path=data.npz)")
    p.add_argument("--device", help="cpu (default), cuda or cuda:N")
    p.add_argument("--engine", choices=ENGINES,
                   help="auto (default): mlp for plain MLPs, else vmap; mlp: hand-batched MLP ensemble; "
                        f"vmap: torch.func ensemble, any model; loop: one {unit} at a time (the reference)")
    p.add_argument("--out", "-o", default="scan.h5", help="HDF5 file shared by scan and train; re-running resumes "
                   "it (default scan.h5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary table")
    p.add_argument("--shard", metavar="I/N|auto", help=f"{shard_help} into OUT.shard-IIII-of-NNNN.h5; "
                   "auto: from a Slurm job array or MPI")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="landscape", description="Reduced loss landscapes (Omnigrok's L/U curves) for grokking studies.")
    p.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("scan", help="build the reduced landscape (train/test loss against weight norm)",
                       description="Minimize the training loss on spheres ||theta|| = w for a grid of norms "
                                   "and store train/test metrics at each constrained minimizer.")
    d = ScanConfig()
    _add_run_options(s, "compute only shard I of N (interleaved points)", "point")
    s.add_argument("--norms", metavar="SPEC", help=f"START:STOP[:NUM[:log]] or A,B,C (default {d.norms}; NUM 11)")
    s.add_argument("--absolute", action="store_true", default=None,
                   help="norms are raw L2 norms instead of multiples alpha of the default-init norm w0")
    s.add_argument("--restarts", type=_positive_int("--restarts"), help=f"initializations per norm (default {d.restarts})")
    s.add_argument("--steps", type=_positive_int("--steps"), help=f"optimizer steps per point (default {d.steps})")
    s.add_argument("--lr", type=_positive_float("--lr"), help=f"peak learning rate, cosine-decayed (default {d.lr})")
    s.add_argument("--batch-size", type=_positive_int("--batch-size"), help="minibatch size (default: full batch)")
    s.add_argument("--seed", type=int, help=f"seed for initializations and minibatches (default {d.seed})")
    s.add_argument("--method", choices=["riemannian", "project"],
                   help="riemannian: Adam on the sphere (default); project: Adam then rescale (Omnigrok)")
    s.add_argument("--constrain", metavar="GLOB", help="parameters whose joint norm is constrained (default '*': all)")
    s.add_argument("--history", type=_nonneg_int("--history"), metavar="N",
                   help="also record train and test loss every N steps")
    s.add_argument("--save-params", action="store_true", default=None, help="store the constrained minimizers")
    s.add_argument("--chunk", type=_positive_int("--chunk"), help="points per batched computation (default: from memory)")
    s.add_argument("--overwrite", action="store_true", help="replace an output file that holds another experiment")

    t = sub.add_parser("train", help="free-training trajectories (AdamW) stored next to the scan",
                       description="Train with AdamW from a scaled default initialization and log norm, losses and "
                                   "accuracies over steps. Lists sweep: every (weight decay, init scale, seed) "
                                   "combination is one trajectory, all trained as one ensemble.")
    d = TrainConfig()
    _add_run_options(t, "train only shard I of N of the sweep's trajectories", "trajectory")
    t.add_argument("--init-scale", type=_float_list("--init-scale"), metavar="A[,A...]",
                   help="multiply the default initialization by alpha (default 1)")
    t.add_argument("--weight-decay", type=_float_list("--weight-decay"), metavar="WD[,WD...]",
                   help="AdamW decoupled weight decay (default 0)")
    t.add_argument("--seeds", type=_int_list, metavar="S[,S...]", help="initialization and minibatch seeds (default 0)")
    t.add_argument("--lr", type=_positive_float("--lr"), help=f"learning rate, constant (default {d.lr})")
    t.add_argument("--steps", type=_positive_int("--steps"), help=f"training steps (default {d.steps})")
    t.add_argument("--batch-size", type=_positive_int("--batch-size"), help="minibatch size (default: full batch)")
    t.add_argument("--constrain", metavar="GLOB", help="parameter set whose norm is logged as constrained_norm (default '*')")
    t.add_argument("--log-every", type=_positive_int("--log-every"), metavar="N",
                   help="log every N steps (default: a log-spaced grid)")
    t.add_argument("--log-points", type=_positive_int("--log-points"), metavar="N",
                   help=f"points of the log-spaced grid (default {d.log_points})")
    t.add_argument("--checkpoint-every", type=_positive_int("--checkpoint-every"), metavar="N",
                   help=f"write logs and a resumable checkpoint every N steps (default {d.checkpoint_every})")
    t.add_argument("--chunk", type=_positive_int("--chunk"), help="trajectories per batched computation")
    t.add_argument("--overwrite", action="store_true", help="replace trajectories of the same name with other settings")

    mg = sub.add_parser("merge", help="join shard files into one file",
                        description="Check that shards hold the same experiment, join their points and "
                                    "trajectories, report what is missing, and write the result atomically.")
    mg.add_argument("shards", nargs="+", metavar="SHARD", help="shard files or glob patterns ('scan.shard-*.h5')")
    mg.add_argument("-o", "--out", required=True, help="merged output file")
    mg.add_argument("--allow-partial", action="store_true", help="write even with missing points, recording the gaps")

    sb = sub.add_parser("submit", help="launch a sharded scan or sweep on Slurm: job array plus merge job",
                        description="Submit `landscape scan|train ARGS --shard auto` as a Slurm job array and a "
                                    "merge job that runs after the whole array succeeds (afterok). Prints both job ids.")
    sb.add_argument("what", choices=["scan", "train"], help="the command to shard")
    sb.add_argument("--tasks", type=_positive_int("--tasks"), required=True, help="array tasks (shards)")
    sb.add_argument("--throttle", type=_positive_int("--throttle"), metavar="K", help="at most K tasks at once (%%K)")
    sb.add_argument("--time", help="#SBATCH --time, e.g. 02:00:00")
    sb.add_argument("--partition", help="#SBATCH --partition")
    sb.add_argument("--cpus-per-task", type=_positive_int("--cpus-per-task"), help="#SBATCH --cpus-per-task")
    sb.add_argument("--mem", help="#SBATCH --mem, e.g. 4G")
    sb.add_argument("--account", help="#SBATCH --account")
    sb.add_argument("--sbatch", default="sbatch", help="sbatch executable (default: sbatch on PATH)")
    sb.add_argument("--dry-run", action="store_true", help="print the sbatch commands instead of running them")
    sb.epilog = "Arguments for landscape scan/train follow a lone --, and must include --out FILE."

    pl = sub.add_parser("plot", help="draw the L/U figure and the trajectories of a file")
    pl.add_argument("file")
    pl.add_argument("-o", "--out", help="figure path; .png, .pdf or .svg (default FILE with .png); "
                                        "with trajectories a second figure NAME-grokking.SUFFIX is written")
    pl.add_argument("--trajectories", metavar="NAMES", help="comma list of trajectory names to draw (default all)")

    an = sub.add_parser("analyze", help="critical norm, Goldilocks zone, predicted vs measured grokking time",
                        description="Read the scan and the trajectories of FILE, print the critical norm w_c, the "
                                    "test-minimizing norm, the Goldilocks zone and, per trajectory, memorization and "
                                    "grokking steps beside the steps weight decay needs to reach each norm; store the "
                                    "result under /analysis.")
    an.add_argument("file")
    an.add_argument("--json", action="store_true", help="print the result as JSON")
    an.add_argument("--train-loss", type=_positive_float("--train-loss"), metavar="L",
                    help="absolute train-loss threshold for the knee and for memorization (regression)")
    an.add_argument("--train-loss-rel", type=_positive_float("--train-loss-rel"), metavar="F",
                    help="default threshold: F x the train loss at the smallest norm (default 0.01)")
    an.add_argument("--train-acc", type=_fraction("--train-acc"), metavar="A",
                    help="memorized/knee when train accuracy >= A (classification; default 0.99)")
    an.add_argument("--test-acc", type=_fraction("--test-acc"), metavar="A",
                    help="grokked when test accuracy >= A (classification; default 0.9)")
    an.add_argument("--goldilocks", type=_factor("--goldilocks"), metavar="F",
                    help="zone: norms whose test loss is within F x the minimum; regression runs grok on entering it "
                         "(default 10)")
    an.add_argument("--test-loss", type=_positive_float("--test-loss"), metavar="L",
                    help="absolute test-loss threshold for grokking (regression)")
    an.add_argument("--no-accuracy", action="store_true", help="use loss criteria even for classification tasks")
    an.add_argument("--no-write", action="store_true", help="do not store the result in the file")

    i = sub.add_parser("info", help="summarize a landscape file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("tasks", help="list the built-in tasks")
    return p


def _merge(args, cls):
    """Defaults < TOML preset < flags given on the command line."""
    try:
        values = load_toml(args.config, cls) if args.config else {}
    except ValueError as e:
        raise UsageError(str(e)) from None
    for key in field_names(cls):
        v = getattr(args, key, None)
        if v is not None and key != "task_options":
            values[key] = v
    options = values.pop("task_options", {})
    if not isinstance(options, dict):
        raise UsageError("config: [task_options] must be a table")
    options = dict(options)
    options.update(dict(args.task_opt or []))
    return cls(**values, task_options=options)


def _scan_config(args) -> ScanConfig:
    cfg = _merge(args, ScanConfig)
    _check_config(cfg)
    return cfg


def _train_config(args) -> TrainConfig:
    cfg = _merge(args, TrainConfig)
    _check_common(cfg)
    for name in ("init_scale", "weight_decay", "seeds"):
        v = getattr(cfg, name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v]
            setattr(cfg, name, v)
        kinds = int if name == "seeds" else (int, float)
        if not isinstance(v, list) or not v or not all(isinstance(x, kinds) and not isinstance(x, bool) for x in v):
            raise UsageError(f"{name} must be a non-empty list of numbers, got {v!r}")
        if name != "seeds" and any(not np.isfinite(x) or x < 0 for x in v):
            raise UsageError(f"{name} values must be finite and non-negative, got {v!r}")
    if 0 in cfg.init_scale or 0.0 in cfg.init_scale:
        raise UsageError("init_scale must be positive")
    names = [f"{wd:g}/{a:g}/{s}" for wd in cfg.weight_decay for a in cfg.init_scale for s in cfg.seeds]
    if len(set(names)) != len(names):
        raise UsageError("the sweep lists the same (weight decay, init scale, seed) twice")
    return cfg


def _is(value, kind) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


TYPES = {"task": str, "norms": str, "absolute": bool, "restarts": int, "steps": int, "lr": float,
         "batch_size": int, "seed": int, "method": str, "constrain": str, "history": int, "save_params": bool,
         "chunk": int, "engine": str, "device": str, "log_every": int, "log_points": int, "checkpoint_every": int}
OPTIONAL = {"batch_size", "chunk"}


def _check_types(cfg) -> None:
    """Every field has the type it must have (TOML presets can hold anything)."""
    for name in field_names(type(cfg)):
        value = getattr(cfg, name)
        if name in TYPES and not (value is None and name in OPTIONAL) and not _is(value, TYPES[name]):
            expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[TYPES[name]]
            raise UsageError(f"{name} must be {expected}, got {value!r}")


MINIMUM = {"restarts": 1, "steps": 1, "history": 0, "batch_size": 1, "chunk": 1, "log_every": 0, "log_points": 1,
           "checkpoint_every": 1}


def _check_common(cfg) -> None:
    """Types, integer ranges, learning rate, engine and device: what scan and train configs share."""
    _check_types(cfg)
    for name in field_names(type(cfg)):
        v = getattr(cfg, name)
        if name in MINIMUM and v is not None and v < MINIMUM[name]:
            raise UsageError(f"{name} must be an integer >= {MINIMUM[name]}, got {v!r}")
    if not 0 < cfg.lr < float("inf"):
        raise UsageError(f"lr must be a positive number, got {cfg.lr!r}")
    if cfg.engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {cfg.engine!r}")
    _check_device(cfg.device)


def _check_config(cfg: ScanConfig) -> None:
    """Validate values that may come from a TOML file (flags are checked by argparse)."""
    _check_common(cfg)
    if cfg.method not in ("riemannian", "project"):
        raise UsageError(f"method must be riemannian or project, got {cfg.method!r}")


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: expected cpu, cuda or cuda:N")


def _plan(args, cfg, make_plan, auto_chunk):
    """Resolve the task, the plan, the chunk size and the shard: every failure is bad input (exit 2)."""
    from .tasks import get_task

    with _as_usage_error():
        task = get_task(cfg.task, cfg.task_options)
        cfg.task_options = task.options
    with _as_usage_error(f"task {cfg.task!r}: "):
        plan = make_plan(cfg, task)
        size = cfg.chunk or auto_chunk(plan)
    with _as_usage_error():
        shard = shard_mod.resolve(args.shard)
    return plan, size, shard


def cmd_scan(args) -> int:
    from tqdm import tqdm

    from . import scan, store

    cfg = _scan_config(args)
    plan, size, shard = _plan(args, cfg, scan.make_plan, scan.auto_chunk)
    out = args.out if shard is None else shard_mod.shard_path(args.out, shard[0], shard[1])
    # The handler is in place before the file exists: a SIGTERM at any point leaves it whole.
    with _Termination(immediate=True) as term:
        with term.critical(), _as_usage_error():
            todo = store.prepare_scan(out, cfg, plan, overwrite=args.overwrite, shard=shard and shard[:2])
        mine = plan.n_points if shard is None else len(range(shard[0], plan.n_points, shard[1]))
        if mine - len(todo) and not args.quiet:
            print(f"resuming {out}: {mine - len(todo)} of {mine} points already done", file=sys.stderr)
        bar = tqdm(total=len(todo) * cfg.steps, unit="step", unit_scale=True, desc="scan", smoothing=0.1,
                   disable=True if args.quiet else None)
        for chunk in scan.chunks(todo, size):
            result = scan.run_chunk(plan, chunk, device=cfg.device, engine=cfg.engine, on_progress=bar.update)
            with term.critical(), _as_usage_error():
                store.write_chunk(out, result, cfg.restarts)
    bar.close()
    if shard is not None and shard[2] == "mpi":
        _mpi_merge(args.out, shard, args.quiet)
    if not args.quiet and shard is None:
        print(summary_table(store.read_scan(out)))
    if not args.quiet:
        print(f"wrote {out}")
    return 0


def _mpi_merge(out: str, shard, quiet: bool) -> None:
    """Under MPI with mpi4py: wait for every rank, then rank 0 merges the shards into ``out``.

    Every rank reaches both barriers, and a failed merge is broadcast so all ranks
    exit with the same one-line error instead of waiting for ever.
    """
    try:
        from mpi4py import MPI
    except ImportError:
        if not quiet:
            print(f"no mpi4py: merge the shards yourself with `landscape merge ... -o {out}`", file=sys.stderr)
        return
    from . import merge

    comm = MPI.COMM_WORLD
    comm.Barrier()
    error = None
    if shard[0] == 0:
        paths = [p for p in (shard_mod.shard_path(out, i, shard[1]) for i in range(shard[1])) if p.exists()]
        try:
            merge.merge(paths, out)
        except ValueError as e:
            error = " ".join(str(e).split())
        if error is None and not quiet:
            print(f"rank 0 merged {len(paths)} shards into {out}")
    error = comm.bcast(error, root=0)
    comm.Barrier()
    if error is not None:
        raise UsageError(error)


def cmd_train(args) -> int:
    from tqdm import tqdm

    from . import store, train

    cfg = _train_config(args)
    plan, size, shard = _plan(args, cfg, train.make_plan, train.members_per_chunk)
    if cfg.engine == "loop":
        size = 1  # separate runs, one trajectory after the other
    out = args.out
    if shard is not None:
        out = shard_mod.shard_path(args.out, shard[0], shard[1])
        plan.members = shard_mod.shard_items(plan.members, shard[0], shard[1])
        if not plan.members:
            print(f"shard {shard[0]}/{shard[1]} has no trajectories (the sweep has fewer members)", file=sys.stderr)
            if shard[2] == "mpi":
                _mpi_merge(args.out, shard, args.quiet)
            return 0
    # The handler is in place before the file exists: a SIGTERM at any point is a checkpoint, never a torn file.
    term = _Termination(immediate=False)
    with term:
        with _as_usage_error():
            states = store.prepare_trajectories(out, cfg, plan, overwrite=args.overwrite)
        # group members by the step they resume from; finished ones are skipped
        groups: dict[int, list] = {}
        for m in plan.members:
            ck = states[m.name]
            start = ck[0] if ck is not None else 0
            if start < cfg.steps:
                groups.setdefault(start, []).append(m)
        skipped = len(plan.members) - sum(len(g) for g in groups.values())
        if skipped and not args.quiet:
            print(f"{out}: {skipped} of {len(plan.members)} trajectories already finished", file=sys.stderr)
        total = sum((cfg.steps - start) * ((len(g) + size - 1) // size) for start, g in groups.items())
        bar = tqdm(total=total, unit="step", unit_scale=True, desc="train", smoothing=0.1,
                   disable=True if args.quiet else None)
        batches = [(start, group[i:i + size]) for start, group in sorted(groups.items())
                   for i in range(0, len(group), size)]
        for start, part in batches:
            state = train.resume_state(plan, part, [states[m.name] for m in part], start)
            names = [m.name for m in part]

            def save(st, log, names=names):
                a = log.arrays() if len(log) else {k: np.zeros((len(names), 0)) for k in train.Log.NAMES}
                with term.critical(), _as_usage_error():
                    store.write_trajectories(out, names, st.step, a, log.step, st.theta.cpu().numpy(),
                                             st.adam.m.cpu().numpy(), st.adam.v.cpu().numpy(), st.adam.t,
                                             done=st.step >= cfg.steps)

            train.run(plan, part, state, device=cfg.device, engine=cfg.engine, on_checkpoint=save, on_progress=bar.update,
                      should_stop=lambda: term.requested)
            if term.requested:
                break
    bar.close()
    if term.requested:
        print(f"landscape: terminated; checkpoint written to {out}, rerun the same command to resume",
              file=sys.stderr)
        return 128 + term.signum
    if shard is not None and shard[2] == "mpi":
        _mpi_merge(args.out, shard, args.quiet)
    if not args.quiet:
        print(trajectory_table(store.read_trajectories(out), [m.name for m in plan.members]))
        print(f"wrote {out}")
    return 0


def _acc(value) -> str:
    return f"{value:9.4f}" if np.isfinite(value) else f"{'-':>9}"


def trajectory_table(trajs: list[dict], names: list[str] | None = None) -> str:
    """One line per trajectory: hyperparameters and the last logged metrics."""
    head = (f"{'trajectory':<28} {'wd':>7} {'init':>6} {'seed':>4} {'step':>8} {'norm':>9} "
            f"{'train loss':>11} {'test loss':>11} {'train acc':>9} {'test acc':>9}  status")
    lines = [head]
    for t in trajs:
        if names is not None and t["name"] not in names:
            continue
        if len(t["step"]):
            last = {k: t[k][-1] for k in ("step", "constrained_norm", "train_loss", "test_loss", "train_acc", "test_acc")}
        else:
            last = {k: np.nan for k in ("constrained_norm", "train_loss", "test_loss", "train_acc", "test_acc")}
            last["step"] = 0
        lines.append(f"{t['name']:<28} {t['weight_decay']:7.3g} {t['init_scale']:6.3g} {t['seed']:4d} "
                     f"{int(last['step']):8d} {last['constrained_norm']:9.4g} {last['train_loss']:11.4e} "
                     f"{last['test_loss']:11.4e} {_acc(last['train_acc'])} {_acc(last['test_acc'])}  {t['status']}")
    return "\n".join(lines)


def summary_table(s: dict) -> str:
    """alpha, w, train loss, test loss, accuracies and status per norm (best restart)."""
    from .plot import best_restart

    names = {0: "pending", 1: "done", 2: "diverged"}
    best = best_restart(s)
    head = f"{'alpha':>8} {'w':>9} {'train loss':>11} {'test loss':>11}"
    if s["classification"]:
        head += f" {'train acc':>9} {'test acc':>9}"
    lines = [head + "  status"]
    for k in range(len(s["alpha"])):
        r = best[k] if best[k] >= 0 else 0
        row = f"{s['alpha'][k]:8.4g} {s['norm'][k]:9.4g} {s['train_loss'][k, r]:11.4e} {s['test_loss'][k, r]:11.4e}"
        if s["classification"]:
            row += f" {s['train_acc'][k, r]:9.4f} {s['test_acc'][k, r]:9.4f}"
        statuses = [names[int(v)] for v in s["status"][k]]
        status = statuses[0] if len(set(statuses)) == 1 else ",".join(statuses)
        lines.append(f"{row}  {status}")
    if s["status"].shape[1] > 1:
        lines.append("(best restart by train loss per norm)")
    return "\n".join(lines)


def cmd_plot(args) -> int:
    from . import plot, store

    out = Path(args.out) if args.out else Path(args.file).with_suffix(".png")
    if out.suffix.lower() not in plot.FORMATS:
        raise UsageError(f"-o {out}: figure format must be one of {', '.join(plot.FORMATS)}")
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: directory {str(out.parent)!r} does not exist")
    with _as_usage_error():
        scan = store.read_scan(args.file)
        trajs = store.read_trajectories(args.file)
        result = store.read_analysis(args.file)
    if args.trajectories is not None:
        wanted = [n.strip() for n in args.trajectories.split(",") if n.strip()]
        if not wanted:
            raise UsageError("--trajectories: give one or more names separated by commas")
        known = [t["name"] for t in trajs]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise UsageError(f"{args.file}: no trajectory {', '.join(unknown)}; it has: {', '.join(known) or 'none'}")
        trajs = [t for t in trajs if t["name"] in wanted]
    trajs = [t for t in trajs if len(t["step"])]
    if scan is not None and not (scan["status"] == 1).any():
        scan = None  # nothing finished (all pending or diverged): no curve to draw
    if scan is None and not trajs:
        raise UsageError(f"{args.file}: holds no finished scan points and no logged trajectories to plot")
    written = []
    if scan is not None:
        fig = plot.scan_figure(scan)
        plot.overlay_trajectories(fig, trajs)
        if result is not None:
            plot.annotate_analysis(fig, result)
        plot.save(fig, out)
        written.append(out)
    if trajs:
        path = out if scan is None else out.with_name(f"{out.stem}-grokking{out.suffix}")
        plot.save(plot.grokking_figure(trajs), path)
        written.append(path)
    fig = plot.prediction_figure(result) if result is not None else None
    if fig is not None:
        path = out.with_name(f"{out.stem}-prediction{out.suffix}")
        plot.save(fig, path)
        written.append(path)
    for path in written:
        print(f"wrote {path}")
    return 0


def _finite(obj):
    """NaN and infinities as null, so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def cmd_info(args) -> int:
    from . import store

    with _as_usage_error():
        desc = store.describe(args.file)
        scan = store.read_scan(args.file)
        trajs = store.read_trajectories(args.file)
    if args.json:
        out = {"attrs": desc["attrs"], "groups": desc["groups"]}
        if scan is not None:
            out["scan"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scan.items()}
        out["trajectories"] = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in t.items()}
                               for t in trajs]
        print(json.dumps(_finite(out), indent=1, default=str, allow_nan=False))
        return 0
    a = desc["attrs"]
    print(f"{args.file}: {a.get('format')} format v{a.get('format_version')}, written by landscape "
          f"{a.get('landscape_version')} (torch {a.get('torch_version')}) on {a.get('created')}")
    print(f"task: {a.get('task')} {a.get('task_options')}")
    if scan is None:
        print("scan: none")
    else:
        cfg = scan["config"]
        counts = {name: int((scan["status"] == v).sum()) for name, v in (("done", 1), ("diverged", 2), ("pending", 0))}
        K, R = scan["status"].shape
        print(f"scan: {K} norms x {R} restarts, w0 = {scan['w0']:.6g}, {cfg['method']} Adam, {cfg['steps']} steps, "
              f"lr {cfg['lr']}, batch {cfg['batch_size'] or 'full'}, seed {cfg['seed']}")
        print("points: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
        print(summary_table(scan))
    if not trajs:
        print("trajectories: none")
    else:
        cfg = trajs[0]["config"]
        print(f"trajectories: {len(trajs)} (AdamW, lr {cfg['lr']}, {cfg['steps']} steps, "
              f"batch {cfg['batch_size'] or 'full'}); last logged values:")
        print(trajectory_table(trajs))
    return 0


def cmd_tasks(args) -> int:
    from .tasks import describe

    for name, text in describe():
        print(f"{name:16s} {text}")
    print(f"{'pkg.module:func':16s} your own factory returning landscape.tasks.Task")
    return 0


def cmd_analyze(args) -> int:
    from . import analysis, store

    with _as_usage_error():
        scan = store.read_scan(args.file)
        trajs = store.read_trajectories(args.file)
    if scan is not None and not (scan["status"] == 1).any():
        print(f"{args.file}: the scan has no finished points; analyzing the trajectories alone", file=sys.stderr)
        scan = None
    if scan is None and not trajs:
        raise UsageError(f"{args.file}: holds neither finished scan points nor trajectories to analyze")
    opts = {"train_loss": args.train_loss, "train_loss_rel": args.train_loss_rel, "train_acc": args.train_acc,
            "test_acc": args.test_acc, "goldilocks": args.goldilocks, "test_loss": args.test_loss}
    criteria = analysis.Criteria(**{k: v for k, v in opts.items() if v is not None},
                                 accuracy=False if args.no_accuracy else None)
    result = analysis.analyze(scan, [t for t in trajs if len(t["step"])], criteria)
    data = analysis.to_dict(result)
    if args.json:
        print(json.dumps(data, indent=1, allow_nan=False))
    else:
        print(analysis.format_report(result))
    if not args.no_write:
        with _as_usage_error():
            store.write_analysis(args.file, data)
    return 0


def cmd_merge(args) -> int:
    import glob

    from . import merge

    paths = []
    for pattern in args.shards:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise UsageError(f"merge: no file matches {pattern!r}")
        paths += found
    with _Termination(immediate=True) as term, term.critical(), _as_usage_error():
        report = merge.merge(paths, args.out, allow_partial=args.allow_partial)
    line = f"merged {len(report.shards)} shards into {args.out}: {report.points} scan points, " \
           f"{report.trajectories} trajectories"
    print(line)
    if not report.complete:
        print(f"landscape: warning: {report.describe_missing()} (recorded in the file's 'missing' attribute)",
              file=sys.stderr)
    return 0


def submit_commands(args) -> list[list[str]]:
    """The two sbatch command lines: the job array, then the merge job (its dependency filled in later)."""
    import shlex

    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if "--shard" in rest or any(a.startswith("--shard=") for a in rest):
        raise UsageError("submit: do not pass --shard; every array task uses --shard auto")
    out = None
    for i, a in enumerate(rest):
        if a in ("--out", "-o") and i + 1 < len(rest):
            out = rest[i + 1]
        elif a.startswith("--out="):
            out = a.split("=", 1)[1]
    if out is None:
        raise UsageError(f"submit: pass the {args.what} arguments after --, including --out FILE")
    out = str(Path(out).resolve())
    rest = [out if a == out or Path(a).resolve() == Path(out) else a for a in rest]
    parsed = build_parser().parse_args([args.what, *rest])  # validate the arguments now, not on the cluster
    from .tasks import get_task

    if args.what == "scan":
        from .grid import parse_norms

        cfg = _scan_config(parsed)
        with _as_usage_error():
            parse_norms(cfg.norms)
    else:
        cfg = _train_config(parsed)
    with _as_usage_error():
        get_task(cfg.task, cfg.task_options)
    python = shlex.quote(sys.executable)
    common = [f"--{k.replace('_', '-')}={v}" for k, v in (("time", args.time), ("partition", args.partition),
              ("cpus_per_task", args.cpus_per_task), ("mem", args.mem), ("account", args.account)) if v]
    array = f"0-{args.tasks - 1}" + (f"%{args.throttle}" if args.throttle else "")
    stem = Path(out)
    log_dir = stem.parent
    task_cmd = " ".join([python, "-m", "landscape", args.what, *map(shlex.quote, rest), "--shard", "auto", "--quiet"])
    width = max(4, len(str(args.tasks - 1)))
    pattern = f"{stem.stem}.shard-*-of-{args.tasks:0{width}d}{stem.suffix}"
    merge_cmd = " ".join([python, "-m", "landscape", "merge", shlex.quote(str(log_dir / pattern)),
                          "-o", shlex.quote(out)])
    first = [args.sbatch, "--parsable", f"--job-name=landscape-{args.what}", f"--array={array}", *common,
             f"--output={log_dir / (stem.stem + '.shard-%a.log')}", f"--wrap={task_cmd}"]
    second = [args.sbatch, "--parsable", "--job-name=landscape-merge", "--dependency=afterok:{array_job}", *common,
              f"--output={log_dir / (stem.stem + '.merge.log')}", f"--wrap={merge_cmd}"]
    return [first, second]


def cmd_submit(args) -> int:
    import shlex
    import subprocess

    first, second = submit_commands(args)
    if args.dry_run:
        for cmd in (first, second):
            print(" ".join(shlex.quote(c) for c in cmd))
        return 0
    ids = []
    for cmd in (first, second):
        cmd = [c.replace("{array_job}", ids[0]) if ids else c for c in cmd]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise UsageError(f"submit: {cmd[0]!r} not found; is this a Slurm login node?") from None
        if r.returncode != 0:
            raise UsageError(f"submit: sbatch failed: {' '.join(r.stderr.split())}")
        ids.append(r.stdout.strip().split(";")[0])
    print(f"array job {ids[0]} ({args.tasks} tasks), merge job {ids[1]} (after the array succeeds)")
    return 0


COMMANDS = {"scan": cmd_scan, "train": cmd_train, "analyze": cmd_analyze, "merge": cmd_merge, "submit": cmd_submit, "plot": cmd_plot, "info": cmd_info, "tasks": cmd_tasks}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = []
    if argv[:1] == ["submit"] and "--" in argv:  # everything after -- belongs to the sharded command
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    try:
        args = build_parser().parse_args(argv)
        args.args = rest
        return COMMANDS[args.command](args)
    except UsageError as e:
        msg = str(e)
        print(msg if msg.startswith("landscape") else f"landscape: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head, less, ...
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("landscape: interrupted; finished points are kept in the output file", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``landscape`` command line: argument parsing and dispatch to ``landscape.commands.write``.

Options of ``scan`` and ``train`` are built from the declarations in
``landscape.config.settings`` (type, range, default and help of each field), so a flag
and a TOML key always accept the same values. Bad input of any kind arrives
here as ``BadInput`` and is printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
from pathlib import Path

from . import api, cluster
from .commands import write as commands, phases as phases_run, read as readers
from .config import settings as config
from .version import __version__
from .config.settings import ScanConfig, TrainConfig
from .config.phases import PhasesConfig
from .errors import BadInput, one_line

EXIT_USAGE = 2


class UsageError(BadInput):
    """Bad command-line syntax (raised by the parser instead of printing usage)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(f"{self.prog}: {message}")


def _positive(flag: str, kind=int, minimum: float = 1):
    """An argparse type for options that are not config fields (analyze, submit)."""
    return config.Rule(kind, minimum=minimum if kind is int else None, positive=kind is float).parse(flag)


def _file(flag: str):
    """An argparse type for a file path: not empty (an empty one would name the current directory)."""
    def parse(text):
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{flag}: empty; name a file")
        return text
    return parse


def _fraction(flag):
    def parse(text):
        v = _positive(flag, float)(text)
        if v > 1:
            raise argparse.ArgumentTypeError(f"{flag} must be in (0, 1], got {text!r}")
        return v
    return parse


def _factor(flag):
    def parse(text):
        v = _positive(flag, float)(text)
        if v < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {text!r}")
        return v
    return parse


def _task_opt(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--task-opt expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


class _Formatter(argparse.HelpFormatter):
    """Help that lists a registry's choices with what each one is (read only when --help is asked for)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if isinstance(action.choices, config.Registry):
            text += f" ({action.choices.describe()})"
        return text


class _Accumulate(argparse.Action):
    """A listed option given more than once: the lists add up."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, (getattr(namespace, self.dest, None) or []) + list(values))


def _field(p: argparse.ArgumentParser, cls, name: str) -> None:
    """The option ``--name`` for config field ``name``: parsed, checked and documented by its declared rule."""
    rule, default = config.rule(cls, name), config.default(cls, name)
    flag = "--" + name.replace("_", "-")
    help_text = rule.help
    if default is not None and default is not False:
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text += f"; default {shown}"
    if rule.kind is bool:
        p.add_argument(flag, action="store_true", default=None, help=help_text)
    elif rule.repeatable:
        p.add_argument(flag, type=rule.parse(flag), action="append", metavar=rule.metavar or "NAME", help=help_text)
    elif rule.listed:  # a comma list; given again, its values are added (--seeds 0,1 --seeds 2 is 0,1,2)
        p.add_argument(flag, type=rule.parse(flag), action=_Accumulate, metavar=rule.metavar or "NAME",
                       help=help_text + " (repeatable: the lists add up)")
    else:
        extra = {} if rule.const is None else {"nargs": "?", "const": rule.const}
        p.add_argument(flag, type=rule.parse(flag), choices=rule.choices, metavar=rule.metavar or "NAME",
                       help=help_text, **extra)


def _run_options(p: argparse.ArgumentParser, cls, shard_help: str) -> None:
    """Options that scan and train share: preset, task, device, engine, output file, progress, shard."""
    p.add_argument("--config", metavar="FILE.toml", help="preset whose values the flags override")
    _field(p, cls, "task")
    p.add_argument("--task-opt", type=_task_opt, action="append", metavar="KEY=VALUE",
                   help="task option, repeatable (e.g. p=97, path=data.npz)")
    _field(p, cls, "device")
    _field(p, cls, "engine")
    p.add_argument("--out", "-o", default="scan.h5", type=_file("--out"), help="HDF5 file shared by scan and train; re-running resumes "
                   "it (default scan.h5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary table")
    p.add_argument("--shard", metavar="I/N|auto", help=f"{shard_help} into OUT.shard-IIII-of-NNNN.h5; "
                   "auto: from a Slurm job array or MPI")


RUN_FIELDS = ("task", "task_options", "device", "engine")  # added by _run_options, with the shared options


def _fields(p: argparse.ArgumentParser, cls) -> None:
    """One option for every other field of ``cls``, in declaration order."""
    for name in config.field_names(cls):
        if name not in RUN_FIELDS:
            _field(p, cls, name)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="landscape", description="Reduced loss landscapes (Omnigrok's L/U curves) for grokking studies.",
                formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"landscape {__version__}")
    p.add_argument("--traceback", action="store_true", help="print the full traceback of an error that is "
                   "otherwise one line (also LANDSCAPE_TRACEBACK=1): where in your task's code it was raised")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=functools.partial(
        _Parser, formatter_class=_Formatter))
    sub.required = True

    s = sub.add_parser("scan", help="build the reduced landscape (train/test loss against weight norm)",
                       description="Minimize the training loss on spheres ||theta|| = w for a grid of norms "
                                   "and store train/test metrics at each constrained minimizer.")
    _run_options(s, ScanConfig, "compute only shard I of N (interleaved points)")
    _fields(s, ScanConfig)
    s.add_argument("--overwrite", action="store_true", help="replace the scan (with --branch: the branches) of an "
                   "output file that holds another one, keeping its trajectories, branches and phase diagram; a file "
                   "of another task is replaced whole. The old file stays readable until the new one is complete")

    t = sub.add_parser("train", help="training trajectories (AdamW, or norm-fixed) stored next to the scan",
                       description="Train with AdamW from a scaled default initialization and log norm, losses and "
                                   "accuracies over steps (with --fix-norm: on the sphere of the initial norm). "
                                   "Lists sweep: every (weight decay, init scale, seed) combination is one "
                                   "trajectory, all trained as one ensemble.")
    _run_options(t, TrainConfig, "train only shard I of N of the sweep's trajectories")
    _fields(t, TrainConfig)
    t.add_argument("--overwrite", action="store_true", help="replace trajectories of the same name with other "
                   "settings; the old file stays readable until the new one is complete")

    ph = sub.add_parser("phases", help="phase diagram: a grid over two hyperparameters trained as one sweep, "
                        "each run classified as comprehension, grokking, memorization or confusion",
                        description="Train every cell of a grid over two of lr, weight-decay, init-scale and "
                                    "train-frac (and every --seeds value) as one batched sweep, classify each run by "
                                    "when it fits and when it generalizes (Liu et al. 2022), store /phases and draw "
                                    "OUT-phases.png. Resumable and shardable as train; after a sharded run, "
                                    "`landscape merge` classifies the merged file.")
    _run_options(ph, PhasesConfig, "train only shard I of N of the grid's runs")
    _fields(ph, PhasesConfig)
    ph.add_argument("--overwrite", action="store_true", help="replace runs of the same name with other settings, "
                    "and the file's phase diagram when it is another grid's")

    mg = sub.add_parser("merge", help="join shard files into one file",
                        description="Check that shards hold the same experiment, join their points and "
                                    "trajectories, report what is missing, and write the result atomically.")
    mg.add_argument("shards", nargs="+", metavar="SHARD", help="shard files or glob patterns ('scan.shard-*.h5')")
    mg.add_argument("-o", "--out", required=True, type=_file("--out"), help="merged output file")
    mg.add_argument("--allow-partial", action="store_true", help="write even with missing points, recording the gaps")

    sb = sub.add_parser("submit", help="launch a sharded scan or sweep on Slurm: job array plus merge job",
                        description="Submit `landscape scan|train ARGS --shard auto` as a Slurm job array and a "
                                    "merge job that runs after the whole array succeeds (afterok). Prints both job ids.")
    sb.add_argument("what", choices=["scan", "train", "phases"], help="the command to shard (the merge job also "
                    "classifies a phase diagram)")
    sb.add_argument("--tasks", type=_positive("--tasks"), required=True, help="array tasks (shards)")
    sb.add_argument("--throttle", type=_positive("--throttle"), metavar="K", help="at most K tasks at once (%%K)")
    sb.add_argument("--time", help="#SBATCH --time, e.g. 02:00:00")
    sb.add_argument("--partition", help="#SBATCH --partition")
    sb.add_argument("--cpus-per-task", type=_positive("--cpus-per-task"), help="#SBATCH --cpus-per-task")
    sb.add_argument("--mem", help="#SBATCH --mem, e.g. 4G")
    sb.add_argument("--account", help="#SBATCH --account")
    sb.add_argument("--sbatch", default="sbatch", help="sbatch executable (default: sbatch on PATH)")
    sb.add_argument("--dry-run", action="store_true", help="print the sbatch commands instead of running them")
    sb.epilog = "Arguments for landscape scan/train follow a lone --, and must include --out FILE."

    pl = sub.add_parser("plot", help="draw the L/U figure and the trajectories of a file")
    pl.add_argument("file")
    pl.add_argument("-o", "--out", type=_file("--out"), help="figure path; .png, .pdf or .svg (default FILE with .png); "
                                        "with trajectories also NAME-grokking.SUFFIX and NAME-metrics.SUFFIX, "
                                        "and NAME-fixnorm.SUFFIX when free and --fix-norm runs share seed and lr")
    pl.add_argument("--trajectories", metavar="NAMES", help="comma list of trajectory names to draw (default all)")

    an = sub.add_parser("analyze", help="critical norm, Goldilocks zone, predicted vs measured grokking time",
                        description="Read the scan and the trajectories of FILE, print the critical norm w_c, the "
                                    "test-minimizing norm, the Goldilocks zone and, per trajectory, memorization and "
                                    "grokking steps beside the steps weight decay needs to reach each norm; store the "
                                    "result under /analysis.")
    an.add_argument("file")
    an.add_argument("--json", action="store_true", help="print the result as JSON")
    an.add_argument("--train-loss", type=_positive("--train-loss", float), metavar="L",
                    help="absolute train-loss threshold for the knee and for memorization (regression)")
    an.add_argument("--train-loss-rel", type=_positive("--train-loss-rel", float), metavar="F",
                    help="default threshold: F x the train loss at the smallest norm (default 0.01)")
    an.add_argument("--train-acc", type=_fraction("--train-acc"), metavar="A",
                    help="memorized/knee when train accuracy >= A (classification; default 0.99)")
    an.add_argument("--test-acc", type=_fraction("--test-acc"), metavar="A",
                    help="grokked when test accuracy >= A (classification; default 0.9)")
    an.add_argument("--goldilocks", type=_factor("--goldilocks"), metavar="F",
                    help="zone on regression (or with --no-accuracy): norms whose test loss is within F x the "
                         "minimum, and runs grok on entering it (default 10); on classification the zone is where "
                         "test accuracy reaches --test-acc")
    an.add_argument("--test-loss", type=_positive("--test-loss", float), metavar="L",
                    help="absolute test-loss threshold for grokking (regression)")
    an.add_argument("--no-accuracy", action="store_true", help="use loss criteria even for classification tasks")
    an.add_argument("--no-write", action="store_true", help="do not store the result in the file")

    i = sub.add_parser("info", help="summarize a landscape file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("tasks", help="list the built-in tasks")
    sub.add_parser("metrics", help="list the trajectory metrics (train --metrics) and the tasks they apply to")
    return p


def config_of(args: argparse.Namespace, cls):
    """The validated config of a parsed ``scan`` or ``train`` command: defaults < ``--config`` < flags."""
    flags = {name: getattr(args, name, None) for name in config.field_names(cls)}
    return config.resolve(cls, getattr(args, "config", None), flags, getattr(args, "task_opt", None))


def _submit(args) -> int:
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
    kinds = {"scan": ScanConfig, "train": TrainConfig, "phases": PhasesConfig}
    cfg = config_of(parsed, kinds[args.what])
    cluster.check_sharded(args.what, cfg, out)
    if args.what == "phases":
        phases_run.check(cfg, out, parsed.overwrite)
    settings = {"time": args.time, "partition": args.partition, "cpus_per_task": args.cpus_per_task,
                "mem": args.mem, "account": args.account}
    return cluster.launch(args.what, rest, out, args.tasks, args.throttle, settings, args.sbatch, args.dry_run)


def _analyze(args) -> int:
    criteria = {"train_loss": args.train_loss, "train_loss_rel": args.train_loss_rel, "train_acc": args.train_acc,
                "test_acc": args.test_acc, "goldilocks": args.goldilocks, "test_loss": args.test_loss}
    return api.analyze(args.file, accuracy=False if args.no_accuracy else None, as_json=args.json,
                       write=not args.no_write, load=False, **criteria)


def _run(function, cls):
    """A computing command: its flags, preset and task options handed to the API function (``landscape.api``)."""
    def run(a):
        flags = {name: getattr(a, name) for name in config.field_names(cls)
                 if name != "task_options" and getattr(a, name, None) is not None}
        return function(out=a.out, shard=a.shard, overwrite=a.overwrite, quiet=a.quiet, config=a.config,
                        task_options=a.task_opt, load=False, **flags)
    return run


COMMANDS = {
    "scan": _run(api.scan, ScanConfig),
    "train": _run(api.train, TrainConfig),
    "phases": _run(api.phases, PhasesConfig),
    "analyze": _analyze,
    "merge": lambda a: api.merge(a.shards, a.out, allow_partial=a.allow_partial, load=False),
    "submit": _submit,
    "plot": lambda a: api.plot(a.file, out=a.out, trajectories=a.trajectories, load=False),
    "info": lambda a: readers.info(a.file, a.json),
    "tasks": lambda a: commands.tasks(),
    "metrics": lambda a: commands.metrics_list(),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = []
    if "submit" in argv[:2] and "--" in argv:  # everything after -- belongs to the sharded command
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    show = os.environ.get("LANDSCAPE_TRACEBACK", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        args.args = rest
        show = show or args.traceback
        return COMMANDS[args.command](args)
    except BadInput as e:  # ConfigError, StoreError, TaskError, UsageError, validation messages
        if show:  # the whole chain: the frame in the user's task code included
            traceback.print_exception(e)
        msg = one_line(e)
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

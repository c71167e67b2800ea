"""The ``landscape`` command: argument parsing, validation at the boundary, and the commands.

No numerics here. Bad input is reported as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .config import ScanConfig, load_toml

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


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


def _task_opt(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--task-opt expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="landscape", description="Reduced loss landscapes (Omnigrok's L/U curves) for grokking studies.")
    p.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("scan", help="build the reduced landscape (train/test loss against weight norm)",
                       description="Minimize the training loss on spheres ||theta|| = w for a grid of norms "
                                   "and store train/test metrics at each constrained minimizer.")
    d = ScanConfig()
    s.add_argument("--config", metavar="FILE.toml", help="preset whose values the flags below override")
    s.add_argument("--task", help=f"built-in task or package.module:function (default {d.task})")
    s.add_argument("--task-opt", type=_task_opt, action="append", metavar="KEY=VALUE",
                   help="task option, repeatable (e.g. p=97, path=data.npz)")
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
    s.add_argument("--engine", choices=["vmap", "loop"], help="vmap: batched ensemble (default); loop: one point at a time")
    s.add_argument("--device", help="cpu (default), cuda or cuda:N")
    s.add_argument("--out", "-o", default="scan.h5", help="HDF5 output; re-running resumes it (default scan.h5)")
    s.add_argument("--overwrite", action="store_true", help="replace an output file that holds another experiment")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary table")

    pl = sub.add_parser("plot", help="draw the L/U figure of a file")
    pl.add_argument("file")
    pl.add_argument("-o", "--out", help="figure path; .png, .pdf or .svg (default FILE with .png)")

    i = sub.add_parser("info", help="summarize a landscape file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("tasks", help="list the built-in tasks")
    return p


def _scan_config(args) -> ScanConfig:
    try:
        values = load_toml(args.config) if args.config else {}
    except ValueError as e:
        raise UsageError(str(e)) from None
    for key in ("task", "norms", "absolute", "restarts", "steps", "lr", "batch_size", "seed", "method",
                "constrain", "history", "save_params", "chunk", "engine", "device"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    options = dict(values.pop("task_options", {}) or {})
    options.update(dict(args.task_opt or []))
    try:
        cfg = ScanConfig(**values, task_options=options)
    except TypeError as e:
        raise UsageError(f"config: {e}") from None
    _check_config(cfg)
    return cfg


def _check_config(cfg: ScanConfig) -> None:
    """Validate values that may come from a TOML file (flags are checked by argparse)."""
    ints = {"restarts": 1, "steps": 1, "history": 0}
    for name, low in ints.items():
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise UsageError(f"{name} must be an integer >= {low}, got {v!r}")
    for name in ("batch_size", "chunk"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise UsageError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(cfg.lr, (int, float)) or not 0 < cfg.lr < float("inf"):
        raise UsageError(f"lr must be a positive number, got {cfg.lr!r}")
    if cfg.method not in ("riemannian", "project"):
        raise UsageError(f"method must be riemannian or project, got {cfg.method!r}")
    if cfg.engine not in ("vmap", "loop"):
        raise UsageError(f"engine must be vmap or loop, got {cfg.engine!r}")
    _check_device(cfg.device)


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


def cmd_scan(args) -> int:
    from tqdm import tqdm

    from . import scan, store
    from .tasks import get_task

    cfg = _scan_config(args)
    try:
        task = get_task(cfg.task, cfg.task_options)
        plan = scan.make_plan(cfg, task)
        todo = store.prepare_scan(args.out, cfg, plan, overwrite=args.overwrite)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cfg.task_options = task.options
    done = plan.n_points - len(todo)
    if done and not args.quiet:
        print(f"resuming {args.out}: {done} of {plan.n_points} points already done", file=sys.stderr)
    size = cfg.chunk or scan.auto_chunk(plan)
    bar = tqdm(total=len(todo) * cfg.steps, unit="step", unit_scale=True, desc="scan", smoothing=0.1,
               disable=True if args.quiet else None)
    for chunk in scan.chunks(todo, size):
        result = scan.run_chunk(plan, chunk, device=cfg.device, engine=cfg.engine, on_progress=bar.update)
        store.write_chunk(args.out, result, cfg.restarts)
    bar.close()
    if not args.quiet:
        print(summary_table(store.read_scan(args.out)))
        print(f"wrote {args.out}")
    return 0


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
    try:
        scan = store.read_scan(args.file)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if scan is None:
        raise UsageError(f"{args.file}: holds no scan to plot")
    if not (scan["status"] != 0).any():
        raise UsageError(f"{args.file}: the scan has no finished points yet")
    plot.save(plot.scan_figure(scan), out)
    print(f"wrote {out}")
    return 0


def cmd_info(args) -> int:
    from . import store

    try:
        desc = store.describe(args.file)
        scan = store.read_scan(args.file)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        out = {"attrs": desc["attrs"], "groups": desc["groups"]}
        if scan is not None:
            out["scan"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scan.items()}
        print(json.dumps(out, indent=1, default=str))
        return 0
    a = desc["attrs"]
    print(f"{args.file}: {a.get('format')} format v{a.get('format_version')}, written by landscape "
          f"{a.get('landscape_version')} (torch {a.get('torch_version')}) on {a.get('created')}")
    print(f"task: {a.get('task')} {a.get('task_options')}")
    if scan is None:
        print("scan: none")
        return 0
    cfg = scan["config"]
    counts = {name: int((scan["status"] == v).sum()) for name, v in (("done", 1), ("diverged", 2), ("pending", 0))}
    K, R = scan["status"].shape
    print(f"scan: {K} norms x {R} restarts, w0 = {scan['w0']:.6g}, {cfg['method']} Adam, {cfg['steps']} steps, "
          f"lr {cfg['lr']}, batch {cfg['batch_size'] or 'full'}, seed {cfg['seed']}")
    print("points: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    print(summary_table(scan))
    return 0


def cmd_tasks(args) -> int:
    from .tasks import describe

    for name, text in describe():
        print(f"{name:16s} {text}")
    print(f"{'pkg.module:func':16s} your own factory returning landscape.tasks.Task")
    return 0


COMMANDS = {"scan": cmd_scan, "plot": cmd_plot, "info": cmd_info, "tasks": cmd_tasks}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
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

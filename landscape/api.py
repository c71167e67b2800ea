"""The Python API: every ``landscape`` command as a function, its results as labelled xarray data.

>>> import landscape as ls
>>> ds = ls.scan("teacher-student", norms="0.5:3:6", steps=50, quiet=True)   # doctest: +SKIP
>>> ds.sel(norm=5.0, method="nearest").train_loss                            # doctest: +SKIP

Keyword names are the command's flags with underscores (``--weight-decay 0.1,0.3`` is ``weight_decay=[0.1,
0.3]`` or ``weight_decay="0.1,0.3"``); defaults, checks and messages come from the same declarations the command
line reads (``landscape.config.settings``). ``task`` is a built-in name, a ``package.module:function`` spec, or a
``landscape.tasks.Task`` made in the notebook. ``out=None`` computes into a temporary file and returns the results
in memory; with a path, files, resume, crash safety, shards and ``overwrite`` behave exactly as the command's, and
the file is the one the command would write. Bad input raises a ``ValueError`` subclass (``landscape.BadInput``)
with the command's one-line message before any step runs.

The command line calls these functions (``load=False``: return the exit code instead of reading results back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from .commands import write as commands, phases as phases_run, read as readers
from .config import settings as config_mod
from .store import labelled
from . import store
from .config.settings import ConfigError, ScanConfig, TrainConfig
from .config.phases import PhasesConfig

__all__ = ["scan", "train", "phases", "analyze", "merge", "open", "plot", "Analysis"]


class Terminated(RuntimeError):
    """A run stopped by a signal (SIGTERM from a batch system's time limit); what finished is in the file."""


def _settings(cls, task, preset, task_options, settings: dict[str, Any]):
    """The validated config of ``cls`` from keyword settings (defaults < ``preset`` TOML < keywords)."""
    from .tasks import Task

    known = set(config_mod.field_names(cls)) - {"task", "task_options"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; accepted: "
                          f"{', '.join(sorted(known))}")
    flags = {}
    for name, value in settings.items():
        rule = config_mod.rule(cls, name)
        if isinstance(value, str) and (rule.listed or rule.kind is not str):  # "0.1,0.3" as the flag reads it
            value = _parse(rule, name, value)
        elif isinstance(value, tuple):
            value = list(value)
        flags[name] = value
    held = task if isinstance(task, Task) else None
    flags["task"] = held.name if held is not None else task
    if held is not None and task_options:
        raise ConfigError("task: a Task object takes no task_options (build it with the options you want)")
    return config_mod.resolve(cls, preset, flags, list(dict(task_options or {}).items())), held


def _parse(rule, name: str, text: str):
    import argparse

    try:
        return rule.parse(name)(text)
    except argparse.ArgumentTypeError as e:
        raise ConfigError(str(e)) from None


@contextlib.contextmanager
def _output(out):
    """The output path: ``out``, or a file in a temporary directory removed afterwards (``out=None``)."""
    if out is not None:
        yield Path(out)
        return
    with tempfile.TemporaryDirectory(prefix="landscape-") as d:
        yield Path(d) / "landscape.h5"


@contextlib.contextmanager
def _task(held):
    from .tasks import holding

    if held is None:
        yield
    else:
        with holding(held):
            yield


def _finish(code: int, path: Path, load: bool, read, shard=None):
    """The exit code (``load=False``: the command line's), None for a shard (its file is merged later), or the
    results read back."""
    if not load:
        return code
    if code != 0:
        raise Terminated(f"landscape: terminated (exit {code}); what finished is in {path}, run the same call "
                         "again to resume")
    return None if shard is not None else read(path)


def scan(task=None, *, out=None, config=None, task_options=None, shard=None, overwrite=False, quiet=False,
         load=True, **settings):
    """Build the reduced landscape (``landscape scan``): train and test loss at the constrained minimizer of every
    norm and restart.

    Returns the scan as an ``xarray.Dataset`` over ``norm`` (``alpha`` on the same axis; a two-norm grid:
    ``norm_1``, ``norm_2``) and ``restart``; a continuation branch (``branch="down"`` or ``"up"``) that branch's,
    ``branch="both"`` both along a ``branch`` dimension. ``attrs["engine"]``: the engine that ran it (``mlp``,
    ``vmap`` or ``loop``, where ``auto`` fell back).
    """
    cfg, held = _settings(ScanConfig, task, config, task_options, settings)
    with _task(held), _output(out) as path:
        code = commands.scan(cfg, str(path), shard, overwrite, quiet, table=load is False)
        return _finish(code, path, load, lambda p: _engine(_scan_result(p, cfg.branch), p, "scan"), shard)


def _scan_result(path: Path, branch: str):
    import xarray as xr

    if branch == "independent":
        return labelled.scan_dataset(store.read_scan(path))
    parts = [labelled.scan_dataset(store.read_scan(path, b)) for b in (("down", "up") if branch == "both" else
                                                                      (branch,))]
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim="branch").assign_coords(branch=["down", "up"])


def train(task=None, *, out=None, config=None, task_options=None, shard=None, overwrite=False, quiet=False,
          load=True, **settings):
    """Train trajectories (``landscape train``): every combination of the listed hyperparameters as one batched
    ensemble. Returns them as an ``xarray.Dataset`` over ``trajectory`` and ``step``, with ``lr``,
    ``weight_decay``, ``init_scale``, ``seed`` and ``train_frac`` as coordinates along ``trajectory``;
    ``attrs["engine"]``: the engine that ran them."""
    cfg, held = _settings(TrainConfig, task, config, task_options, settings)
    with _task(held), _output(out) as path:
        code = commands.train(cfg, str(path), shard, overwrite, quiet, table=load is False)
        names = [m.name for m in cfg.members()]
        return _finish(code, path, load, lambda p: _engine(_trajectories(p).sel(trajectory=names), p, "train"),
                       shard)


def _engine(result, path: Path, command: str):
    """``result`` with attribute ``engine``: the engine the run used (``loop`` where ``auto`` fell back)."""
    engine = store.root_configs(path).get(command, {}).get("engine")
    if engine is not None:
        result.attrs["engine"] = engine
    return result


def _trajectories(path: Path):
    return labelled.trajectories_dataset(store.read_trajectories(path), store.series_meta(path))


def phases(task=None, *, out=None, config=None, task_options=None, shard=None, overwrite=False, quiet=False,
           load=True, **settings):
    """A phase diagram (``landscape phases``): a grid over two hyperparameters trained as one sweep, each run
    classified. Returns the file as an ``xarray.DataTree`` whose ``/phases`` holds the diagram."""
    cfg, held = _settings(PhasesConfig, task, config, task_options, settings)
    with _task(held), _output(out) as path:
        code = phases_run.run(cfg, str(path), shard, overwrite, quiet)
        return _finish(code, path, load, open, shard)


@dataclasses.dataclass
class Analysis:
    """What ``landscape analyze`` finds: the critical norm, the Goldilocks zone, and per trajectory the measured and
    predicted grokking steps. ``to_dict()`` is the JSON the command prints with ``--json``; the repr is its
    report."""

    data: dict
    report: str

    def to_dict(self) -> dict:
        return self.data

    def __repr__(self) -> str:
        return self.report

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(self.report)


def analyze(path, *, write=True, accuracy=None, as_json=False, load=True, **criteria):
    """Analyze the file at ``path`` (``landscape analyze``); stores the result under ``/analysis`` unless
    ``write=False``. ``criteria``: ``train_loss``, ``train_loss_rel``, ``train_acc``, ``test_acc``, ``goldilocks``,
    ``test_loss`` as the command's flags. Returns an :class:`Analysis`."""
    known = ("train_loss", "train_loss_rel", "train_acc", "test_acc", "goldilocks", "test_loss")
    unknown = sorted(set(criteria) - set(known))
    if unknown:
        raise ConfigError(f"analyze: unknown criteria {', '.join(unknown)}; accepted: {', '.join(known)}")
    crit = {k: criteria.get(k) for k in known}
    if not load:  # the command: print the report (or JSON) and store it
        return readers.analyze(str(path), crit, accuracy=accuracy, as_json=as_json, write=write)
    data, report = readers.analysis_result(str(path), crit, accuracy, write)
    return Analysis(data, report)


def merge(shards, out, *, allow_partial=False, load=True):
    """Join shard files (paths or glob patterns) into ``out`` (``landscape merge``); returns the merged file as an
    ``xarray.DataTree``."""
    shards = [str(shards)] if isinstance(shards, (str, Path)) else [str(s) for s in shards]
    code = commands.merge(shards, str(out), allow_partial)
    return code if not load else open(out)


def open(path):  # noqa: A001 -- ``ls.open(path)``, as ``xarray.open_dataset``
    """Read a landscape file as an ``xarray.DataTree``: ``/scan``, ``/branches/down|up`` and ``/trajectories``
    as labelled datasets (``landscape.store.labelled``), ``/phases`` where the file holds a phase diagram."""
    if not Path(path).exists():
        raise store.StoreError(f"{path}: no such file")
    return labelled.open_file(path)


def plot(path, *, out=None, trajectories=None, load=True):
    """The figures ``landscape plot`` draws for the file at ``path``, as matplotlib ``Figure`` objects; with
    ``out`` (a figure path: ``.png``, ``.pdf``, ``.svg``) they are also written there and beside it, as the
    command writes them. ``trajectories``: names to draw (a list or a comma string)."""
    if isinstance(trajectories, (list, tuple)):
        trajectories = ",".join(trajectories)
    if not load:
        return readers.plot(str(path), out, trajectories)
    drawn = readers.figures_of(str(path), out, trajectories)
    if out is not None:
        readers.save_figures(drawn)
    return [fig for fig, _ in drawn]


"""``landscape phases``: a grid over two hyperparameters trained as one sweep, then classified and drawn.

The grid's cells are the members of one ``landscape train`` sweep (per-member learning rate, weight decay, init
scale and training share), so it is batched, chunked, resumable and shardable as every sweep is. When every
run has finished, :func:`classify_file` builds the diagram (``landscape.analysis.phases``), stores ``/phases`` and draws
``OUT-phases.png``; after a sharded run, ``landscape merge`` does that step on the merged file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config.phases import PhasesConfig
from ..errors import BadInput, bad_input


def run(cfg: PhasesConfig, out: str, shard_spec: str | None = None, overwrite: bool = False,
        quiet: bool = False) -> int:
    from . import write as commands
    from ..experiments import phases

    check(cfg, out, overwrite)
    sweep = cfg.train_config()
    if not quiet:
        x, y = cfg.axes()
        print(f"phase diagram: {len(x.values)} {x.name} x {len(y.values)} {y.name} x {len(cfg.seeds)} seed(s) = "
              f"{len(sweep.members())} runs of {cfg.steps} steps, trained as one sweep", file=sys.stderr)
    rc = commands.train(sweep, out, shard_spec, overwrite, quiet, table=False, also={"phases": cfg})
    if rc != 0 or shard_spec is not None:
        return rc
    with bad_input():
        phases.publish(out, cfg, quiet)
    return 0


def check(cfg: PhasesConfig, out: str, overwrite: bool = False) -> None:
    """Refuse, before any training, a grid that cannot be classified into ``out`` (a regression task with no
    thresholds and no scan there to take them from) or whose diagram would replace another grid's (other axes
    or seeds than the file's ``/phases``) without ``overwrite``. ``BadInput`` with one line."""
    from ..experiments import phases
    from .. import store
    from ..tasks import get_task

    exists = Path(out).exists()
    with bad_input():
        task = get_task(cfg.task, cfg.task_options)
        stored = phases.stored_config(out) if exists else None
        has_scan = exists and store.read_scan(out) is not None
    if not task.classification and (cfg.train_loss is None or cfg.test_loss is None) and not has_scan:
        raise BadInput(f"task {cfg.task!r} is a regression: give --train-loss and --test-loss (the thresholds "
                       "of t_train and t_test), or scan the task into the file first to take them from the "
                       "landscape")
    if stored is not None and not overwrite and _grid(stored) != _grid(cfg):
        raise BadInput(f"{out}: holds the phase diagram of another grid ({_describe(stored)} in file vs "
                       f"{_describe(cfg)} now); use --overwrite to replace it, or another --out")


def _grid(cfg: PhasesConfig) -> tuple:
    x, y = cfg.axes()
    return x.name, tuple(x.values), y.name, tuple(y.values), tuple(cfg.seeds)


def _describe(cfg: PhasesConfig) -> str:
    return f"--x {cfg.x} --y {cfg.y} --seeds {','.join(map(str, cfg.seeds))}"

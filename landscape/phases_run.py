"""``landscape phases``: a grid over two hyperparameters trained as one sweep, then classified and drawn.

The grid's cells are the members of one ``landscape train`` sweep (per-member learning rate, weight decay, init
scale and training share), so it is batched, chunked, resumable and shardable as every sweep is. When every
run has finished, :func:`classify_file` builds the diagram (``landscape.phases``), stores ``/phases`` and draws
``OUT-phases.png``; after a sharded run, ``landscape merge`` does that step on the merged file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .phases_config import PhasesConfig
from .plain import BadInput, bad_input


def run(cfg: PhasesConfig, out: str, shard_spec: str | None = None, overwrite: bool = False,
        quiet: bool = False) -> int:
    from . import commands, phases, store
    from .tasks import get_task

    with bad_input():
        task = get_task(cfg.task, cfg.task_options)
    if not task.classification and (cfg.train_loss is None or cfg.test_loss is None):
        with bad_input():
            has_scan = Path(out).exists() and store.read_scan(out) is not None
        if not has_scan:
            raise BadInput(f"task {cfg.task!r} is a regression: give --train-loss and --test-loss (the thresholds "
                           "of t_train and t_test), or scan the task into the file first to take them from the "
                           "landscape")
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

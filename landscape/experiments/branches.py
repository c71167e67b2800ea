"""``landscape scan --branch down|up|both``: continuation branches, computed and stored one norm at a time.

Each branch has its own group (``/branches/down``, ``/branches/up``) and resumes from its first unfinished norm
(in its order), starting from the minimizers stored with the last finished one. At each norm the restarts of
every unfinished branch are one ensemble (in chunks of ``size`` members); the results of a norm are one atomic
commit per branch. The optimization itself is ``landscape.experiments.scan.run_branch_step``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import cluster, store
from ..engine import worker
from . import scan as scan_mod
from ..errors import BadInput, bad_input
from ..status import Status


def names(branch: str) -> tuple[str, ...]:
    """The branches ``--branch`` asks for."""
    return ("down", "up") if branch == "both" else (branch,)


def origin(cfg, plan, path: Path) -> np.ndarray:
    """``--from-trajectory NAME``: the trajectory's last checkpoint ``[P]``, checked against the scan's model."""
    if cfg.branch not in ("down", "both"):
        raise BadInput(f"--from-trajectory starts the down branch: use it with --branch down or both, "
                       f"not {cfg.branch}")
    if not path.exists():
        raise BadInput(f"--from-trajectory {cfg.from_trajectory}: {path} does not exist (train the trajectory "
                       "into the same --out first)")
    theta, tcfg = store.final_params(path, cfg.from_trajectory)
    if tcfg.get("task") != cfg.task or tcfg.get("task_options") != plan.task.options:
        raise BadInput(f"--from-trajectory {cfg.from_trajectory}: it was trained on task {tcfg.get('task')} "
                       f"{tcfg.get('task_options')}, the scan is of {cfg.task} {plan.task.options}")
    if theta.shape != (plan.layout.size,):
        raise BadInput(f"--from-trajectory {cfg.from_trajectory}: its model has {theta.size} parameters, "
                       f"the scan's {plan.layout.size}")
    return theta


def resume_from(scan: dict, last: np.ndarray, order: np.ndarray, position: int, mine: np.ndarray,
                R: int) -> np.ndarray | None:
    """The minimizers ``[len(mine), P]`` a branch resumed at ``order[position]`` starts from: those at the norm
    before it (NaN rows: a restart that diverged there starts afresh), or None when the file no longer holds them.

    They are the branch's ``last_params`` when that norm is the last one it finished; when a later norm was
    finished too (a point before it was found incomplete), they are the saved parameters there (``--save-params``).
    """
    prev = order[position - 1] * R + mine
    done = scan["status"].ravel()[prev] == Status.DONE
    touched = [j for j, k in enumerate(order) if (scan["status"].ravel()[k * R + mine] != Status.PENDING).any()]
    if touched and touched[-1] == position - 1 and np.isfinite(last[mine][done]).all():
        return last[mine]
    if "params" in scan and np.isfinite(scan["params"].reshape(len(scan["status"].ravel()), -1)[prev][done]).all():
        return scan["params"].reshape(len(scan["status"].ravel()), -1)[prev]
    return None


def run(cfg, plan, size: int, path: Path, start_from: np.ndarray | None, bar, quiet: bool,
        shard: tuple[int, int] | None = None, step=None) -> tuple[str, ...]:
    """Compute the branches of ``cfg.branch`` into ``path`` (resuming what it holds); returns their names.
    ``bar(total, desc)`` makes the progress bar; ``shard = (i, n)`` computes the restarts ``i, i + n, ...``;
    ``step`` is the optimizer step (``scan.stepper``)."""
    branches = names(cfg.branch)
    K, R = len(plan.norm), cfg.restarts
    mine = np.arange(R) if shard is None else np.arange(shard[0], R, shard[1])
    n = len(mine)
    with cluster.Termination(immediate=True) as term:
        orders = {b: scan_mod.branch_order(K, b) for b in branches}
        position, warm, state, repaired, restarted = {}, {}, {}, [], []
        with term.critical():
            for b in branches:
                todo = set(int(i) for i in store.prepare_scan(path, cfg, plan, shard=shard, branch=b,
                                                              repaired=repaired))
                position[b] = next((j for j, k in enumerate(orders[b]) if any(k * R + r in todo for r in mine)), K)
                state[b] = store.branch_state(path, b)  # [R, P]: every restart's last minimizer (NaN: none yet)
                warm[b] = None
                if position[b] > 0:
                    warm[b] = resume_from(store.read_scan(path, b), state[b], orders[b], position[b], mine, R)
                    if warm[b] is None:  # the minimizers to go on from are lost: the branch starts over
                        position[b] = 0
                        restarted.append(b)
                if b == "down" and position[b] == 0 and start_from is not None:
                    warm[b] = np.tile(start_from, (n, 1))
        if sum(position.values()) and not quiet:
            print(f"resuming {path}: " + ", ".join(f"{b} branch at norm {position[b]} of {K}" for b in branches),
                  file=sys.stderr)
        if sum(repaired) or restarted:
            print(f"{path}: {sum(repaired)} branch point{'' if sum(repaired) == 1 else 's'} marked done but "
                  "incomplete (non-finite or missing losses, saved parameters or history): recomputed"
                  + (f"; the {' and '.join(restarted)} branch from its first norm (the minimizers to go on from "
                     "are not in the file)" if restarted else ""), file=sys.stderr)
        progress = bar(sum(K - position[b] for b in branches) * n * cfg.steps, "scan " + "+".join(branches))
        while any(position[b] < K for b in branches):
            active = [b for b in branches if position[b] < K]
            index = np.concatenate([orders[b][position[b]] * R + mine for b in active])
            start = np.concatenate([warm[b] if warm[b] is not None else np.full((n, plan.layout.size), np.nan)
                                    for b in active])
            with bad_input(f"task {cfg.task!r}: "):
                result = scan_mod.concat([scan_mod.run_branch_step(plan, index[c], start[c],
                                                                   on_progress=progress.update, step=step)
                                          for c in worker.chunks(np.arange(len(index)), size)])
            for i, b in enumerate(active):
                part = scan_mod.rows(result, slice(i * n, (i + 1) * n))
                state[b][mine] = part.params
                with term.critical():
                    store.write_chunk(path, part, R, branch=b, last_params=state[b])
                warm[b], position[b] = part.params, position[b] + 1
        progress.close()
    return branches

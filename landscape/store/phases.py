"""``/phases``: a phase diagram over two hyperparameters (``landscape phases``), rebuilt from the trajectories.

Axes ``x``, ``y`` and ``seed`` are dimension scales; ``phase`` holds codes whose meanings are the attributes
``flag_values`` and ``flag_meanings`` (the CF convention); ``t_train``, ``t_test`` and ``trajectory`` say
where each code came from. New trajectory data makes the group stale: writing trajectories drops it.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .durable import commit
from .format import damaged_as_error, open_file

GROUP = "phases"
DESCRIPTION = ("phase diagram (Liu et al. 2022): each run of the grid classified as comprehension, grokking, "
               "memorization or confusion from t_train and t_test, the first logged steps meeting the training "
               "and the test criterion")


def drop_phases(f: h5py.File) -> None:
    if GROUP in f:
        del f[GROUP]


def write_phases(path: str | Path, d) -> None:
    """Store a ``landscape.analysis.phases.Diagram`` as ``/phases`` (replacing an earlier one), in one commit: its axes
    (``name``, ``values``, ``log``, ``kind.description``), ``seeds``, ``rule``, ``phase_names`` and arrays."""
    with commit(path) as f:
        drop_phases(f)
        g = f.create_group(GROUP)
        g.attrs["description"] = DESCRIPTION
        g.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        g.attrs["steps"] = d.steps
        g.attrs["gap"] = d.rule.gap
        g.attrs["gap_description"] = "grokking when t_test - t_train > gap steps, comprehension otherwise"
        g.attrs["train_acc"], g.attrs["test_acc"] = d.rule.train_acc, d.rule.test_acc
        for key in ("train_loss", "test_loss"):
            g.attrs[key] = np.nan if getattr(d.rule, key) is None else getattr(d.rule, key)
        g.attrs["t_train_criterion"], g.attrs["t_test_criterion"] = d.criteria
        g.attrs["rule"] = ("comprehension: t_test reached no later than gap steps after t_train (or without it); "
                           "grokking: both reached, t_test more than gap steps later; memorization: only t_train; "
                           "confusion: neither")
        for key, axis in (("x", d.x), ("y", d.y)):
            ds = g.create_dataset(key, data=np.asarray(axis.values, dtype=np.float64))
            ds.attrs["axis"] = axis.name
            ds.attrs["long_name"] = axis.kind.description
            ds.attrs["log_scale"] = axis.log
            ds.make_scale(axis.name)
        seed = g.create_dataset("seed", data=np.asarray(d.seeds, dtype=np.int64))
        seed.attrs["long_name"] = "initialization and minibatch seed"
        seed.make_scale("seed")
        cells = {
            "phase": (d.phase.astype(np.int8), "phase code of each run (-1: no finished run)"),
            "t_train": (d.t_train, "first logged step meeting the training criterion (NaN: never)"),
            "t_test": (d.t_test, "first logged step meeting the test criterion (NaN: never)"),
            "trajectory": (np.asarray(d.names, dtype=h5py.string_dtype()), "the run: /trajectories/NAME"),
        }
        for key, (data, desc) in cells.items():
            ds = g.create_dataset(key, data=data)
            ds.attrs["description"] = desc
            for k, scale in enumerate(("x", "y", "seed")):
                ds.dims[k].attach_scale(g[scale])
        if d.lam is not None:  # the effective theory's lambda of each cell's training set
            ds = g.create_dataset("effective_lambda", data=np.asarray(d.lam, dtype=np.float64))
            ds.attrs["description"] = ("smallest non-trivial eigenvalue of Liu et al.'s effective loss over the "
                                       "parallelograms of the cell's training set (NaN: below the critical fraction)")
            for k, scale in enumerate(("x", "y")):
                ds.dims[k].attach_scale(g[scale])
        g["phase"].attrs["flag_values"] = np.arange(len(d.phase_names), dtype=np.int8)
        g["phase"].attrs["flag_meanings"] = " ".join(d.phase_names)
        for key in ("t_train", "t_test"):
            g[key].attrs["units"] = "step"


RULE_ATTRS = ("steps", "gap", "train_acc", "test_acc", "train_loss", "test_loss", "t_train_criterion",
              "t_test_criterion")  # the classification rule, read back by phase_diagram.from_stored


def read_phases(path: str | Path) -> dict[str, Any] | None:
    """``/phases`` as plain values (None when the file has none): axes, seeds, arrays and the rule."""
    with open_file(path, "r") as f, damaged_as_error(path):
        if GROUP not in f:
            return None
        g = f[GROUP]
        missing = [k for k in RULE_ATTRS if k not in g.attrs]
        if missing:
            raise KeyError(f"{GROUP} attribute {missing[0]} is missing")
        out = {key: g[key][()] for key in ("x", "y", "seed", "phase", "t_train", "t_test")}
        out["trajectory"] = g["trajectory"].asstr()[()]
        if "effective_lambda" in g:
            out["effective_lambda"] = g["effective_lambda"][()]
        out["x_axis"], out["y_axis"] = str(g["x"].attrs["axis"]), str(g["y"].attrs["axis"])
        out["x_log"], out["y_log"] = bool(g["x"].attrs["log_scale"]), bool(g["y"].attrs["log_scale"])
        out["phases"] = str(g["phase"].attrs["flag_meanings"]).split()
        out.update({k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()
                    if k not in ("description", "created")})
        return out

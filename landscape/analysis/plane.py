"""Two-norm landscapes: which group's norm sets the test loss, and where free runs travel over the grid.

A two-norm scan (``--norms GLOB=SPEC`` twice) holds each point on a product of
two spheres, one norm per parameter group, over a K1 x K2 grid
(``store.read_scan``'s ``plane``). Its reading here:

* :func:`grids`: the best restart's (lowest train loss) values as ``[K1, K2]`` maps;
* :func:`analyze`: the best cell, each group's *profile* (the lowest test loss
  over the other group's norms, at each of this group's norms) and its range
  in decades: the group whose profile spans more decades is the one whose norm
  matters for generalization (if the test loss depended on group 1 only,
  group 2's profile would be flat); and the Goldilocks cells (test loss within
  ``factor`` x the minimum);
* :func:`paths`: each free trajectory's two group norms over its logged steps,
  from its ``group_norm/<module>`` series where each scan group is made of
  whole top-level modules.

Pure functions of the store's plain dicts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .landscape import best_restart

VALUES = ("train_loss", "test_loss", "train_acc", "test_acc")


@dataclass
class Profile:
    """One group's norm axis against the lowest losses over the other group's norms."""

    group: str  # its glob
    norm: list[float]
    alpha: list[float]
    test_min: list[float]  # per norm of this group: min over the other group's norms (best restart)
    train_min: list[float]
    test_decades: float | None  # log10(max / min) of test_min
    train_decades: float | None


@dataclass
class PlaneAnalysis:
    groups: list[str]
    shape: tuple[int, int]
    best: dict  # the cell of lowest test loss: alpha_1, alpha_2, norm_1, norm_2, losses, accuracies
    profiles: list[Profile]
    factor: float
    zone: dict  # cells within factor x the test minimum: count, and each group's norm range over them
    verdict: str
    notes: list[str] = field(default_factory=list)


def grids(scan: dict) -> dict[str, np.ndarray]:
    """The best restart's ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc`` as ``[K1, K2]`` (NaN where
    no restart finished)."""
    shape = scan["plane"]["shape"]
    best = best_restart(scan)
    k = np.arange(len(best))
    out = {}
    for name in VALUES:
        v = np.asarray(scan[name], dtype=float)[k, np.maximum(best, 0)]
        out[name] = np.where(best >= 0, v, np.nan).reshape(shape)
    return out


def _decades(values: np.ndarray) -> float | None:
    v = values[np.isfinite(values) & (values > 0)]
    return float(np.log10(v.max() / v.min())) if v.size >= 2 else None


def _lowest(values: np.ndarray, axis: int) -> np.ndarray:
    """NaN-ignoring minimum along ``axis`` (NaN where the whole slice is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN, as wanted
        return np.nanmin(values, axis=axis)


def _profile(scan: dict, maps: dict, g: int) -> Profile:
    p = scan["plane"]
    test, train = _lowest(maps["test_loss"], 1 - g), _lowest(maps["train_loss"], 1 - g)
    return Profile(p["groups"][g]["glob"], p["norm"][g].tolist(), p["alpha"][g].tolist(), test.tolist(),
                   train.tolist(), _decades(test), _decades(train))


def analyze(scan: dict, factor: float = 2.0) -> PlaneAnalysis:
    """The best cell, both groups' test-loss profiles and the Goldilocks cells of a two-norm scan."""
    p = scan["plane"]
    maps = grids(scan)
    globs = [grp["glob"] for grp in p["groups"]]
    test = maps["test_loss"]
    profiles = [_profile(scan, maps, g) for g in (0, 1)]
    if not np.isfinite(test).any():
        return PlaneAnalysis(globs, tuple(p["shape"]), {}, profiles, factor, {"cells": 0},
                             "no finished cell: nothing to compare")
    k1, k2 = np.unravel_index(int(np.nanargmin(test)), test.shape)
    best = {"alpha_1": float(p["alpha"][0][k1]), "alpha_2": float(p["alpha"][1][k2]),
            "norm_1": float(p["norm"][0][k1]), "norm_2": float(p["norm"][1][k2]),
            **{name: float(maps[name][k1, k2]) for name in VALUES}}
    inside = np.isfinite(test) & (test <= factor * test[k1, k2])
    rows, cols = np.nonzero(inside)
    zone = {"cells": int(inside.sum()), "of": int(np.isfinite(test).sum()),
            "norm_1": [float(p["norm"][0][rows.min()]), float(p["norm"][0][rows.max()])],
            "norm_2": [float(p["norm"][1][cols.min()]), float(p["norm"][1][cols.max()])]}
    d = [pr.test_decades for pr in profiles]
    notes = []
    for g, (i, K) in enumerate(((k1, p["shape"][0]), (k2, p["shape"][1]))):
        if K > 1 and i in (0, K - 1):
            notes.append(f"the test minimum lies at the {'smallest' if i == 0 else 'largest'} scanned norm of group "
                         f"{g + 1} ({globs[g]}): the minimum may lie beyond the grid")
    if d[0] is None or d[1] is None:
        verdict = "too few finished cells along a group's norms to compare the groups"
    else:
        more = 0 if d[0] >= d[1] else 1
        verdict = (f"group {more + 1} ({globs[more]}) sets the test loss more: its profile spans "
                   f"{d[more]:.2f} decades against {d[1 - more]:.2f} for group {2 - more} ({globs[1 - more]})")
    return PlaneAnalysis(globs, tuple(p["shape"]), best, profiles, factor, zone, verdict, notes)


def group_series(scan: dict, series: list[str]) -> tuple[list[list[str]] | None, str | None]:
    """For each scan group, the ``group_norm/<module>`` series whose squares sum to its norm squared, or
    ``(None, why)`` when a group is not made of whole top-level modules (or a series is not logged)."""
    p = scan["plane"]
    names = p.get("parameter_names") or []
    out = []
    for g, grp in enumerate(p["groups"]):
        mods = sorted({n.split(".", 1)[0] for n in grp["parameters"]})
        whole = all(n in grp["parameters"] for n in names if n.split(".", 1)[0] in mods)
        if not names or not whole:
            return None, (f"group {g + 1} ({grp['glob']}) is not a union of whole top-level modules, so its norm "
                          "is not in the trajectories' group_norm series")
        keys = [f"group_norm/{m}" for m in mods]
        if not all(k in series for k in keys):
            return None, f"the trajectories do not log {', '.join(k for k in keys if k not in series)}"
        out.append(keys)
    return out, None


def paths(scan: dict, trajectories: list[dict]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """``{name: (group 1 norm [T], group 2 norm [T])}`` of the trajectories of the scan's task and data, and
    the reasons the others (or all) are left out."""
    out, why = {}, []
    task, options = scan.get("task"), (scan.get("config") or {}).get("task_options")
    for t in trajectories:
        cfg = t.get("config") or {}
        if cfg.get("task", task) != task or (options is not None and cfg.get("task_options", options) != options):
            why.append(f"{t['name']}: another task or data than the scan's")
            continue
        keys, reason = group_series(scan, list(t.get("series", ())))
        if keys is None:
            why.append(f"{t['name']}: {reason}")
            continue
        out[t["name"]] = tuple(np.sqrt(sum(np.asarray(t[k], dtype=float) ** 2 for k in ks)) for ks in keys)
    return out, why

"""A landscape file as labelled xarray data: what ``landscape.open`` and the API's functions return.

* the scan (``/scan``, and each continuation branch) is a ``Dataset`` over ``norm`` and ``restart``, with
  ``alpha`` a second coordinate on the ``norm`` axis (a two-norm grid: ``norm_1``, ``norm_2``, with ``alpha_1``,
  ``alpha_2``), so ``ds.sel(norm=1.2, method="nearest")`` and ``ds.swap_dims(norm="alpha")`` work;
* the trajectories are one ``Dataset`` over ``trajectory`` and ``step``: a sweep's runs share their logging steps,
  and one dataset lets ``ds.sel(trajectory=...)`` or ``ds.where(ds.weight_decay == 0.1)`` pick across them; its
  hyperparameters (``lr``, ``weight_decay``, ``init_scale``, ``seed``, ``train_frac``) are coordinates along
  ``trajectory``; steps a run did not log are NaN;
* a phase diagram is a ``Dataset`` over its two axes and ``seed``;
* the whole file is an ``xarray.DataTree`` with those datasets at ``/scan``, ``/branches/down``,
  ``/branches/up``, ``/trajectories`` and ``/phases``, and the analysis (JSON) as a root attribute.

Each variable carries its description (and units where the file has them); ``status`` carries CF's
``flag_values`` and ``flag_meanings``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import store
from .trajectories import GROUP_RATES

HYPERPARAMETERS = ("lr", "weight_decay", "init_scale", "seed", "train_frac")
EFFECTIVE = ("effective_lambda", "effective_ideal_test_acc")  # the effective theory's, on an addition task
STATUS_ATTRS = {"flag_values": np.array(list(store.STATUS_ENUM.values()), dtype=np.int8),
                "flag_meanings": " ".join(store.STATUS_ENUM),
                "long_name": "point status", "description": "pending = not computed yet, done = finished, "
                                                            "diverged = a loss became NaN or inf"}


def _xr():
    try:
        import xarray
    except ImportError:  # pragma: no cover -- a dependency; said plainly where it is missing
        raise store.StoreError("labelled results need xarray (pip install 'xarray>=2024.10')") from None
    return xarray


def scan_dataset(scan: dict):
    """The ``read_scan`` dict of one scan group as a ``Dataset`` (see the module's docstring)."""
    xr = _xr()
    R = scan["status"].shape[1]
    plane = scan.get("plane")
    if plane is None:
        dims, shape = ("norm",), (len(scan["norm"]),)
        coords = {"norm": ("norm", scan["norm"], {"units": "L2 norm", "long_name": "L2 norm of the constrained "
                                                                              "parameters"}),
                  "alpha": ("norm", scan["alpha"], {"units": "multiples of w0", "long_name": "norm / w0"})}
    else:
        shape = plane["shape"]
        dims = ("norm_1", "norm_2")
        coords = {}
        for i, d in enumerate(dims):
            coords[d] = (d, plane["norm"][i], {"units": "L2 norm", "long_name": f"L2 norm of group {i + 1}"})
            coords[f"alpha_{i + 1}"] = (d, plane["alpha"][i], {"units": "multiples of w0",
                                                               "long_name": f"norm / w0 of group {i + 1}"})
    coords["restart"] = ("restart", np.arange(R), {"long_name": "independent initialization index"})
    grid = (*dims, "restart")

    def on_grid(a):
        return a.reshape(*shape, R, *a.shape[2:])

    data = {k: (grid, on_grid(scan[k]), {"description": v.description})
            for k, v in store.POINT_VALUES.items()}
    data["status"] = (grid, on_grid(scan["status"]), STATUS_ATTRS)
    if "history" in scan:
        h = scan["history"]
        coords["history_step"] = ("history_step", h["step"], {"units": "step", "long_name": "optimizer step"})
        for k in ("train_loss", "test_loss"):
            data[f"history_{k}"] = ((*grid, "history_step"), on_grid(h[k]),
                                    {"description": f"full-data {k.replace('_', ' ')} during the constrained "
                                                    "optimization"})
    if "curvature" in scan:
        c = scan["curvature"]
        coords["eigenvalue"] = ("eigenvalue", np.arange(1, c["top"].shape[-1] + 1),
                                {"long_name": store.CURVATURE_AXES["eigenvalue"]})
        coords["ritz"] = ("ritz", np.arange(c["ritz_values"].shape[-1]), {"long_name": store.CURVATURE_AXES["ritz"]})
        for name, value in store.CURVATURE.items():
            data[f"curvature_{name}"] = ((*grid, *((value.axis,) if value.axis else ())), on_grid(c[name]),
                                         {"description": value.description})
    if "params" in scan:
        data["params"] = ((*grid, "parameter"), on_grid(scan["params"]),
                          {"description": "constrained minimizers, flattened in the model's parameter order"})
    attrs = {"task": scan["task"], "branch": scan["branch"], "method": scan["method_label"],
             "classification": int(scan["classification"]), "w0": scan["w0"],
             "description": "reduced loss landscape: for each norm, the training loss minimized over parameters of "
                            "that norm, with train and test metrics read at the minimizer"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def trajectories_dataset(trajs: list[dict], meta: dict[str, tuple[str, str]]):
    """The ``read_trajectories`` list as one ``Dataset`` over ``trajectory`` and ``step``."""
    xr = _xr()
    steps = np.unique(np.concatenate([t["step"] for t in trajs])) if trajs else np.zeros(0, np.int64)
    series = list(dict.fromkeys(k for t in trajs for k in t["series"]))
    data = {}
    for key in series:
        values = np.full((len(trajs), len(steps)), np.nan)
        for i, t in enumerate(trajs):
            if key in t:
                values[i, np.searchsorted(steps, t["step"])] = t[key]
        units, desc = meta.get(key, ("", key))
        data[key.replace("/", "_")] = (("trajectory", "step"), values,
                                       {"description": desc, **({"units": units} if units else {})})
    coords = {"trajectory": ("trajectory", [t["name"] for t in trajs]),
              "step": ("step", steps, {"units": "step", "long_name": "optimizer step"})}
    for key in HYPERPARAMETERS:
        coords[key] = ("trajectory", np.array([t.get(key, np.nan if key != "seed" else -1) for t in trajs]))
    for key in (*GROUP_RATES, *EFFECTIVE):  # coordinates where a run has them (NaN on the others)
        if any(key in t for t in trajs):
            coords[key] = ("trajectory", np.array([float(t.get(key, np.nan)) for t in trajs]))
    coords["fix_norm"] = ("trajectory", np.array([bool(t.get("fix_norm", False)) for t in trajs]))
    coords["status"] = ("trajectory", np.array([str(t.get("status", "")) for t in trajs]))
    return xr.Dataset(data, coords=coords, attrs={"description": "training trajectories, one row per run"})


def phases_dataset(grid: dict):
    """The ``read_phases`` dict as a ``Dataset`` over its two axes (named after them: ``lr``, ``weight_decay``,
    ...) and ``seed``: each run's ``phase`` (CF flags), ``t_train``, ``t_test`` and ``trajectory`` name."""
    xr = _xr()
    x, y = grid["x_axis"].replace("-", "_"), grid["y_axis"].replace("-", "_")
    dims = (x, y, "seed")
    data = {
        "phase": (dims, grid["phase"], {"flag_values": np.arange(len(grid["phases"]), dtype=np.int8),
                                        "flag_meanings": " ".join(grid["phases"]),
                                        "description": "phase of each run (-1: no finished run)"}),
        "t_train": (dims, grid["t_train"], {"units": "step", "description": "first logged step meeting the "
                                                                           "training criterion (NaN: never)"}),
        "t_test": (dims, grid["t_test"], {"units": "step", "description": "first logged step meeting the test "
                                                                         "criterion (NaN: never)"}),
        "trajectory": (dims, grid["trajectory"], {"description": "the run: /trajectories/NAME"}),
    }
    coords = {x: (x, grid["x"]), y: (y, grid["y"]), "seed": ("seed", grid["seed"])}
    attrs = {k: v for k, v in grid.items() if isinstance(v, (str, int, float)) and k not in ("x_axis", "y_axis")}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def open_file(path: str | Path):
    """Every group of a landscape file as one ``xarray.DataTree`` (see the module's docstring)."""
    import json

    xr = _xr()
    path = Path(path)
    tree = {}
    scan = store.read_scan(path)
    if scan is not None:
        tree["/scan"] = scan_dataset(scan)
    for name, branch in store.read_branches(path).items():
        tree[f"/branches/{name}"] = scan_dataset(branch)
    trajs = store.read_trajectories(path)
    if trajs:
        tree["/trajectories"] = trajectories_dataset(trajs, store.series_meta(path))
    grid = store.read_phases(path)
    if grid is not None:
        tree["/phases"] = phases_dataset(grid)
    attrs = {k: v for k, v in store.describe(path)["attrs"].items() if isinstance(v, (str, int, float))}
    analysis = store.read_analysis(path)
    if analysis is not None:
        attrs["analysis"] = json.dumps(analysis.get("result", analysis), default=str)
    root = xr.Dataset(attrs={**attrs, "source": str(path)})
    return xr.DataTree.from_dict({"/": root, **tree})

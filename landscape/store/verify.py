"""What a finished result must hold, checked (not trusted) when a run resumes.

A scan point marked ``done`` holds finite losses, a step count, and, where the
group stores them, finite saved parameters, a finite training-loss history and a finite curvature spectrum.
A trajectory's checkpoint holds parameters and AdamW moments of the model's
size, finite unless the trajectory diverged, and its logged rows run in
increasing steps up to the checkpoint with finite losses. Whatever fails these
checks is recomputed; the run says how many (``repaired``). A dataset of the
wrong shape is a damaged file (``StoreError``), not something to recompute.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..status import Status
from .curvature import CURVATURE, shapes, sizes_of
from .format import StoreError

CHECKPOINT_ARRAYS = ("theta", "m", "v")  # TrainState fields stored per member, [P] float32


def _rows_finite(ds: h5py.Dataset, n_points: int, what: str, shape: tuple) -> np.ndarray:
    if ds.shape != shape:
        raise StoreError(f"{ds.file.filename}: damaged or incomplete landscape file ({what} has shape "
                         f"{list(ds.shape)}, not {list(shape)}); use --overwrite to recompute it")
    return np.isfinite(ds[()].reshape(n_points, -1)).all(1)


def incomplete_points(g: h5py.Group, n_axes: int, n_params: int) -> np.ndarray:
    """``[points]`` bool: marked done in the scan group ``g`` without everything a finished point holds."""
    status = g["status"][()].astype(np.int8)
    grid = status.shape
    status = status.ravel()
    n = status.size
    ok = np.isfinite(g["train_loss"][()].ravel()) & np.isfinite(g["test_loss"][()].ravel())
    ok &= g["steps"][()].ravel() >= 0
    if "params" in g:
        ok &= _rows_finite(g["params"], n, f"{g.name}/params", (*grid, n_params))
    if "history" in g:
        T = g["history/step"].shape[0]
        ok &= _rows_finite(g["history/train_loss"], n, f"{g.name}/history/train_loss", (*grid, T))
    if "curvature" in g:  # a finished point's spectrum and trace (a standard error is NaN from one probe)
        for name, shape in shapes(grid, *sizes_of(g)).items():
            if CURVATURE[name].required:
                ok &= _rows_finite(g["curvature"][name], n, f"{g.name}/curvature/{name}", shape)
    return (status == Status.DONE) & ~ok


def checkpoint_ok(c: h5py.Group, n_params: int, diverged: bool) -> bool:
    """Whether checkpoint slot ``c`` holds a state to resume from: every array of the model's size, finite
    unless the trajectory diverged, and its AdamW step count."""
    if "adam_t" not in c.attrs or any(k not in c or c[k].shape != (n_params,) for k in CHECKPOINT_ARRAYS):
        return False
    return diverged or all(np.isfinite(c[k][()]).all() for k in CHECKPOINT_ARRAYS)


def logs_ok(g: h5py.Group, series: list[str], upto: int, diverged: bool) -> bool:
    """Whether the logged rows of trajectory ``g`` up to step ``upto`` are whole: every series as long as
    ``step``, the steps increasing and none past ``upto``, the losses finite unless it diverged."""
    step = g["step"][()]
    if any(g[k].shape != step.shape for k in series) or (np.diff(step) <= 0).any() or (step > upto).any():
        return False
    return diverged or all(np.isfinite(g[k][()]).all() for k in ("train_loss", "test_loss") if k in g)

"""Your own arrays from .npz or HDF5 (x_train, y_train, x_test, y_test) with an MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import Task, TaskError, cross_entropy, label_accuracy, mlp, mse

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise TaskError(f"file task: {str(path)!r} is a directory, not a data file")
    if not path.is_file():
        raise TaskError(f"file task: data file {str(path)!r} does not exist")
    try:
        if path.suffix == ".npz":
            import zipfile

            if not zipfile.is_zipfile(path):
                raise TaskError(f"file task: {str(path)!r} is not an .npz archive (numpy.savez writes one)")
            with np.load(path, allow_pickle=False) as z:
                found = {k: z[k] for k in KEYS if k in z.files}
        else:
            import h5py

            with h5py.File(path, "r") as f:
                groups = [k for k in KEYS if k in f and not isinstance(f[k], h5py.Dataset)]
                if groups:
                    raise TaskError(f"file task: {', '.join(groups)} in {str(path)!r} "
                                    f"{'is a group' if len(groups) == 1 else 'are groups'}, not an array")
                found = {k: f[k][()] for k in KEYS if k in f}
    except TaskError:
        raise
    except Exception as e:  # noqa: BLE001 -- unreadable user data
        raise TaskError(f"file task: cannot read {str(path)!r} ({type(e).__name__}: {e})") from None
    missing = [k for k in KEYS if k not in found]
    if missing:
        raise TaskError(f"file task: {str(path)!r} lacks {', '.join(missing)} (needs {', '.join(KEYS)})")
    return found


def make(path: str = "", widths: str = "200,200", activation: str = "relu", kind: str = "auto") -> Task:
    """Your arrays (.npz or .h5 with x_train, y_train, x_test, y_test): MLP, options path= widths= activation= kind=."""
    if not path:
        raise TaskError("file task needs --task-opt path=DATA.npz (or .h5)")
    d = _load(Path(path))
    for key in KEYS:
        if d[key].size == 0 or d[key].ndim == 0:
            raise TaskError(f"file task: {key} in {path!r} is empty")
        dtype = d[key].dtype
        if dtype == bool or np.issubdtype(dtype, np.complexfloating):
            what = "boolean" if dtype == bool else "complex"
            raise TaskError(f"file task: {key} in {path!r} is {what} (dtype {dtype}); landscape reads real "
                            "floating-point or integer arrays: convert it (astype(np.float32), or astype(np.int64) "
                            "for class labels)")
        if not np.issubdtype(dtype, np.number):
            raise TaskError(f"file task: {key} in {path!r} is not numeric (dtype {dtype})")
        if np.issubdtype(d[key].dtype, np.inexact) and not np.isfinite(d[key]).all():
            raise TaskError(f"file task: {key} in {path!r} holds NaN or infinite values "
                            f"({int((~np.isfinite(d[key])).sum())} of {d[key].size}); clean the data first")
    x_train = torch.as_tensor(d["x_train"], dtype=torch.float32).reshape(len(d["x_train"]), -1)
    x_test = torch.as_tensor(d["x_test"], dtype=torch.float32).reshape(len(d["x_test"]), -1)
    if x_train.shape[1] != x_test.shape[1]:
        raise TaskError(f"file task: x_train has {x_train.shape[1]} features but x_test has {x_test.shape[1]}")
    if kind == "auto":
        integer = np.issubdtype(d["y_train"].dtype, np.integer)
        kind = "classification" if integer else "regression"
    if kind not in ("classification", "regression"):
        raise TaskError(f"file task: kind must be auto, classification or regression, got {kind!r}")
    try:
        hidden = [int(w) for w in str(widths).split(",") if w.strip()]
        if any(w < 1 for w in hidden):
            raise ValueError
    except ValueError:
        raise TaskError(f"file task: widths must be a comma list of positive integers, got {widths!r}") from None
    if kind == "classification":
        y_train = torch.as_tensor(d["y_train"]).long().flatten()
        y_test = torch.as_tensor(d["y_test"]).long().flatten()
        if min(y_train.min(), y_test.min()) < 0:
            raise TaskError("file task: class labels must be non-negative integers")
        n_out = int(max(y_train.max(), y_test.max())) + 1
        loss, accuracy = cross_entropy, label_accuracy
    else:
        y_train = torch.as_tensor(d["y_train"], dtype=torch.float32)
        y_test = torch.as_tensor(d["y_test"], dtype=torch.float32)
        y_train = y_train.reshape(len(y_train), -1)
        y_test = y_test.reshape(len(y_test), -1)
        n_out = y_train.shape[1]
        if y_test.shape[1] != n_out:
            raise TaskError(f"file task: y_train has {n_out} outputs per sample but y_test has {y_test.shape[1]}")
        loss, accuracy = mse, None
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise TaskError("file task: x and y have different numbers of samples")
    sizes = [x_train.shape[1], *hidden, n_out]
    mlp(sizes, activation)  # validate the activation now, at the boundary
    return Task("file", lambda: mlp(sizes, activation), x_train, y_train, x_test, y_test, loss, accuracy,
                options={"kind": kind})

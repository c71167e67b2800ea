"""scikit-learn's bundled 8x8 handwritten digits: a small, offline stand-in for MNIST."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Task, TaskError, mlp, mse, onehot_accuracy


def make(n_train: int = 1000, width: int = 200, seed: int = 0) -> Task:
    """Digits (sklearn 8x8, 1000 train): ReLU MLP 64-200-200-10, MSE on one-hot (Omnigrok's MNIST)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise TaskError("task 'digits' needs scikit-learn: pip install 'landscape[digits]'") from None
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = F.one_hot(torch.tensor(data.target), 10).float()
    if not 0 < n_train < len(x):
        raise TaskError(f"digits: n_train must be between 1 and {len(x) - 1}, got {n_train}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    tr, te = perm[:n_train], perm[n_train:]
    return Task(
        name="digits",
        model=lambda: mlp([64, width, width, 10], "relu"),
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        loss=mse, accuracy=onehot_accuracy,
    )

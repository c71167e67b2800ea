"""Regression on a random teacher: Omnigrok's teacher-student MLP (tanh, 5-100-100-5, MSE)."""

from __future__ import annotations

import torch

from . import Task, TaskError, mlp, mse


def make(seed: int = 0, n_train: int = 100, n_test: int = 100, dim: int = 5, width: int = 100) -> Task:
    """Teacher-student regression: tanh MLP 5-100-100-5 teacher at default init, MSE (Omnigrok)."""
    for name, value in (("dim", dim), ("width", width)):
        if value < 1:
            raise TaskError(f"task 'teacher-student': {name} must be at least 1, got {value}; "
                            f"e.g. --task-opt {name}=100")
    sizes = [dim, width, width, dim]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = mlp(sizes, "tanh")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, dim, generator=g)
    with torch.no_grad():
        y = teacher(x)
    return Task(
        name="teacher-student",
        model=lambda: mlp(sizes, "tanh"),
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        loss=mse,
    )

"""Full-data losses and accuracies of the training and the test set."""

from __future__ import annotations

import torch

from . import metric


def _accuracy(ctx, split):
    loss, acc = ctx.evaluate(split)
    return acc if ctx.task.classification else torch.full_like(loss, float("nan"))


@metric("train_loss", "full training-set loss", always=True)
def train_loss(ctx):
    return ctx.evaluate("train")[0]


@metric("test_loss", "full test-set loss", always=True)
def test_loss(ctx):
    return ctx.evaluate("test")[0]


@metric("train_acc", "training accuracy (NaN for regression tasks)", "fraction", always=True)
def train_acc(ctx):
    return _accuracy(ctx, "train")


@metric("test_acc", "test accuracy (NaN for regression tasks)", "fraction", always=True)
def test_acc(ctx):
    return _accuracy(ctx, "test")

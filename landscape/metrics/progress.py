"""Nanda et al. (2023)'s progress measures of modular addition: the restricted and the excluded loss.

A network that has grokked (a + b) mod p writes its logits as waves ``cos(w_k (a + b - c))`` of a few key
frequencies ``w_k = 2 pi k / p``. As functions of the input pair (a, b), for each output c, those are
combinations of the two directions ``cos(w_k (a + b))`` and ``sin(w_k (a + b))``. The *restricted loss* keeps
only those directions of the logits (plus their mean over the pairs) and reads the loss on the test set: it
falls when the generalizing circuit forms, before the test loss does. The *excluded loss* removes them and
reads the loss on the training set: it rises as the network comes to rely on the circuit to fit its training
data. The key frequencies are each member's current ones, the embedding's ``TOP`` strongest Fourier classes
(``key_frequency``). The logits of all p² pairs come from the forward pass the metrics share
(``Context.forward``).
Exact formulas: ``docs/metrics.md``.
"""

from __future__ import annotations

import math

import torch
from torch.func import vmap

from . import metric
from .embedding import _fourier, _needs_addition


def waves(key: torch.Tensor, p: int) -> torch.Tensor:
    """``[M, 2K, p]``: cos and sin of ``2 pi k s / p`` over the sums s = 0..p-1 for each member's key classes
    ``key: [M, K]``, normalized over the p² pairs (a, b) with a + b = s (mod p); zero where a key is NaN."""
    s = torch.arange(p, dtype=key.dtype, device=key.device)
    ok = torch.isfinite(key)
    angle = 2 * math.pi * torch.where(ok, key, 0)[..., None] * s / p  # [M, K, p]
    scale = ok[..., None].to(key.dtype) * math.sqrt(2) / p  # |cos(w (a + b))| over the p² pairs is p / sqrt(2)
    return torch.cat([angle.cos() * scale, angle.sin() * scale], 1)


def key_part(logits_by_sum: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The projection of the logits on the key directions, as a function of the sum: ``[M, p, c]``.

    ``logits_by_sum: [M, p, c]`` is the sum of the logits over the pairs with each sum s; ``basis`` is
    :func:`waves`. Each direction's value at a pair is the basis entry at its sum (the basis is orthonormal
    over the pairs, each sum being hit by p pairs)."""
    coef = torch.einsum("msc,mjs->mjc", logits_by_sum, basis)  # <logits[:, :, c], direction j> over the pairs
    return torch.einsum("mjc,mjs->msc", coef, basis)


def progress(logits: dict[str, torch.Tensor], sums: dict[str, torch.Tensor], key: torch.Tensor, p: int):
    """``(restricted, excluded)`` logits of each split from the ``logits[split]: [M, N, p]`` of every pair
    (the splits together hold each of the p² pairs once) with ``sums[split]: [N]`` = (a + b) mod p."""
    M, c = key.shape[0], next(iter(logits.values())).shape[-1]
    by_sum = torch.zeros(M, p, c, dtype=key.dtype, device=key.device)
    for split, z in logits.items():
        by_sum.index_add_(1, sums[split], z.to(key.dtype))
    mean = by_sum.sum(1, keepdim=True) / p**2  # [M, 1, c]: the constant term
    part = key_part(by_sum, waves(key, p))
    restricted = {s: mean + part[:, sums[s]] for s in logits}
    excluded = {s: logits[s].to(key.dtype) - part[:, sums[s]] for s in logits}
    return restricted, excluded


def operands(task, x) -> tuple[torch.Tensor, torch.Tensor]:
    """The operands ``(a, b)`` of every example: ``structure['operands'](x)``, else the inputs' first two columns."""
    fn = task.structure.get("operands")
    return fn(x) if fn is not None else (x[:, 0], x[:, 1])


def labels(y: torch.Tensor) -> torch.Tensor:
    """Integer class labels: ``y`` itself, or the arg-max of one-hot rows."""
    return y if not y.is_floating_point() else y.reshape(len(y), -1).argmax(-1)


def _logits(ctx, split: str) -> torch.Tensor:
    out = ctx.forward(split)[0]
    fn = ctx.task.structure.get("logits")
    return out if fn is None else vmap(fn)(out)


def _progress(ctx):
    if "progress" not in ctx._cache:
        worker, p = ctx.worker, ctx.task.structure["modulus"]
        logits = {s: _logits(ctx, s) for s in ("train", "test")}
        sums = {}
        for s in logits:
            a, b = (t.long() for t in operands(ctx.task, worker.data[s][0]))  # integral: checked by _applies
            sums[s] = (a + b) % p
        ctx._cache["progress"] = progress(logits, sums, _fourier(ctx)["key"], p)
    return ctx._cache["progress"]


def _split_loss(task, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of logits ``z: [M, N, c]``: the task's, or with ``structure['logits']`` declared (the task's loss
    reads the model's output, not these), the cross-entropy against the labels."""
    if "logits" in task.structure:
        target = labels(y)
        return vmap(lambda zz: torch.nn.functional.cross_entropy(zz, target))(z)
    return vmap(task.loss, in_dims=(0, None))(z, y.to(z.dtype) if y.is_floating_point() else y)


def _needs_all_pairs(task) -> str | None:
    """None when the progress measures apply: modular addition whose training and test sets hold each of the p²
    pairs once, as operands whose sum mod p is the label, and logits ``[N, classes >= p]``."""
    why = _needs_addition(task)
    if why is not None:
        return why
    from ..tasks import contract

    p = task.structure["modulus"]
    out = contract.sample(task).out
    if "logits" not in task.structure and (out.dim() != 2 or out.shape[1] < p):
        return (f"[N, classes] logits with classes >= p = {p}; the output has shape {list(out.shape)}: declare "
                "structure['logits'] (e.g. lambda out: out[:, -1])")
    pairs = []
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        try:
            a, b = operands(task, x)
            if not all(bool((t == t.round()).all()) if t.is_floating_point() else not t.is_complex() for t in (a, b)):
                return "integer operands (a, b): the inputs' first two columns, or structure['operands'], are not"
            a, b = a.long(), b.long()
        except (IndexError, TypeError, AttributeError, RuntimeError):
            return "operands (a, b) of each example: the inputs' first two columns, or structure['operands']"
        if not bool(((a + b) % p == labels(y)).all()):
            return ("operands whose sum mod p is the label: the inputs' first two columns are not; declare "
                    "structure['operands']")
        pairs.append(a * p + b)
    every = torch.cat(pairs)
    if len(every) != p**2 or len(torch.unique(every)) != p**2:
        return "modular addition whose training and test sets hold all p² pairs, each once"
    return None


ADDITION = "modular addition (op +)"


@metric("restricted_loss", "test loss of the logits restricted to the key frequencies' cos/sin(w(a+b)) "
        "directions and their mean (Nanda et al. 2023)", applies=_needs_all_pairs, tasks=ADDITION)
def restricted_loss(ctx):
    restricted, _ = _progress(ctx)
    return _split_loss(ctx.task, restricted["test"], ctx.worker.data["test"][1]).to(ctx.theta.dtype)


@metric("excluded_loss", "training loss of the logits with the key frequencies' cos/sin(w(a+b)) directions "
        "removed (Nanda et al. 2023)", applies=_needs_all_pairs, tasks=ADDITION)
def excluded_loss(ctx):
    _, excluded = _progress(ctx)
    return _split_loss(ctx.task, excluded["train"], ctx.worker.data["train"][1]).to(ctx.theta.dtype)

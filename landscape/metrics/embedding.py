"""Order parameters of a modular task's token embeddings: Fourier concentration, circularity, key frequencies, RQI.

A network that has grokked modular addition represents the numbers 0..p-1 on
circles: the embedding of a is ``u cos(2 pi k a / p) + v sin(2 pi k a / p)``
for a few key frequencies k (Nanda et al. 2023; Liu et al. 2022). These
metrics read that structure off the embedding matrix ``E: [M, p, d]`` (tokens
0..p-1 along the token axis of the task's embedding parameter, ``task.structure``:
``landscape.tasks.contract``), batched over the ensemble. Exact formulas: ``docs/metrics.md``. The functions on ``E`` are
pure; the registered metrics only extract ``E`` from the flat parameters.
"""

from __future__ import annotations

import torch

from . import metric
from ..tasks.contract import embedding_axis

TOP = 5  # key frequencies kept (and summed in the concentration)
RQI_TOLERANCE = 0.01  # a parallelogram holds when its standardized defect is below this


def fourier(E: torch.Tensor, top: int = TOP) -> dict[str, torch.Tensor]:
    """DFT over the token axis of the mean-removed ``E: [M, p, d]``.

    Returns ``share [M, K]`` (each frequency class k = 1..K, K = p // 2, its
    share of the non-constant power; k and p - k are one class), ``key [M,
    top]`` (the ``top`` classes by power, NaN when there are fewer), their
    summed share ``concentration [M]`` and the power-weighted ``circularity
    [M]`` of the embeddings projected on each key class's plane.
    """
    E = E - E.mean(1, keepdim=True)
    p = E.shape[1]
    F = torch.fft.rfft(E, dim=1)[:, 1:p // 2 + 1]  # [M, K, d]: classes 1..K
    power = F.abs().square().sum(-1)  # [M, K]
    share = power / power.sum(-1, keepdim=True).clamp_min(torch.finfo(power.dtype).tiny)
    n = min(top, share.shape[1])
    weight, idx = share.topk(n, dim=-1)  # [M, n]
    planes = torch.stack([F.real, F.imag], -1)  # [M, K, d, 2]: the (cos, sin) plane of each class
    chosen = planes.gather(1, idx[:, :, None, None].expand(-1, -1, *planes.shape[2:]))  # [M, n, d, 2]
    basis, _ = torch.linalg.qr(chosen)  # orthonormal basis of each plane
    radius = torch.linalg.vector_norm(torch.einsum("mpd,mkdj->mkpj", E, basis), dim=-1)  # [M, n, p]
    mean = radius.mean(-1)
    circ = (1 - radius.std(-1, correction=0) / mean.clamp_min(torch.finfo(mean.dtype).tiny)).clamp(0, 1)
    key = torch.full((E.shape[0], top), float("nan"), dtype=E.dtype, device=E.device)
    key[:, :n] = (idx + 1).to(E.dtype)
    return {"share": share, "key": key, "concentration": weight.sum(-1), "gini": gini(power.sqrt()),
            "circularity": (weight * circ).sum(-1) / weight.sum(-1).clamp_min(torch.finfo(weight.dtype).tiny)}


def gini(x: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of each row of ``x: [M, K]`` (non-negative): 0 for equal entries, (K-1)/K for one non-zero."""
    K = x.shape[-1]
    diff = (x[..., :, None] - x[..., None, :]).abs().sum((-1, -2))
    return diff / (2 * K * x.sum(-1)).clamp_min(torch.finfo(x.dtype).tiny)


def rqi(E: torch.Tensor, tolerance: float = RQI_TOLERANCE) -> torch.Tensor:
    """Representation quality index of Liu et al. (2022) for ``E: [M, p, d]``: ``[M]``.

    The fraction of parallelograms, pairs of distinct unordered pairs {i, j}
    and {m, n} of numbers in 0..p-1 with i + j = m + n, whose standardized
    defect ``|Z_i + Z_j - Z_m - Z_n|^2 / d`` is below ``tolerance``, with
    ``Z`` the embedding centred over the tokens and scaled to mean ``|Z_a|^2
    / d = 1``.
    """
    M, p, d = E.shape
    Z = E - E.mean(1, keepdim=True)
    Z = Z / Z.square().mean((1, 2), keepdim=True).sqrt().clamp_min(torch.finfo(Z.dtype).tiny)
    s = torch.arange(2 * p - 1, device=E.device)[:, None]  # the sums
    i = torch.arange((p + 1) // 2 + 1, device=E.device)[None, :]
    lo = (s - (p - 1)).clamp_min(0)
    first = lo + i  # pairs (first, s - first) with first <= s - first
    valid = (first <= s - first) & (first <= p - 1)
    first, second = first.clamp_max(p - 1), (s - first).clamp(0, p - 1)
    V = Z[:, first] + Z[:, second]  # [M, S, L, d]
    sq = V.square().sum(-1)
    defect = (sq[..., :, None] + sq[..., None, :] - 2 * V @ V.transpose(-1, -2)) / d  # [M, S, L, L]
    L = first.shape[1]
    upper = torch.triu(torch.ones(L, L, dtype=torch.bool, device=E.device), diagonal=1)
    pairs = valid[:, :, None] & valid[:, None, :] & upper  # [S, L, L]: distinct pairs with the same sum
    held = ((defect < tolerance) & pairs).sum((1, 2, 3))
    return held.to(E.dtype) / pairs.sum().clamp_min(1)


def _needs_tokens(task) -> str | None:
    s = task.structure
    if "embedding" in s and "modulus" in s:
        return None
    return "a modular task's token embeddings: structure['modulus'] and ['embedding'] (tasks.contract)"


def _needs_embedding(task) -> str | None:
    """The Fourier metrics: token embeddings of a task mod p (on integer addition the numbers are not a cycle)."""
    return _needs_tokens(task) or (None if task.structure.get("modular", True) else
                                   "a task mod p (structure['modular'] is False: integer arithmetic)")


def _needs_addition(task) -> str | None:
    """Nanda's progress measures: modular addition."""
    return _needs_embedding(task) or (None if task.structure.get("op") == "+" else "modular addition (op +)")


def _needs_sums(task) -> str | None:
    """RQI: addition, mod p or of integers (its parallelograms i + j = m + n are integer sums either way)."""
    return _needs_tokens(task) or (None if task.structure.get("op") == "+" else "addition (op +)")


def embedding(ctx) -> torch.Tensor:
    """Tokens 0..p-1 of the task's embedding parameter, along its token axis, for every member: ``[M, p, d]``
    (any other axes of the parameter flattened into d)."""
    return tokens(ctx.task, ctx.layout, ctx.theta)


def tokens(task, layout, theta: torch.Tensor) -> torch.Tensor:
    """:func:`embedding` of the flat parameters ``theta [M, P]`` of a model with ``layout``."""
    name, p = task.structure["embedding"], task.structure["modulus"]
    start = 0
    for n, size, shape in zip(layout.names, layout.numels, layout.shapes):
        if n == name:
            axis = embedding_axis(task, shape)
            E = theta[:, start:start + size].reshape(-1, *shape).movedim(axis + 1, 1)[:, :p]
            return E.reshape(E.shape[0], p, -1)
        start += size
    raise ValueError(f"the embedding {name!r} is not a trainable parameter of the model")


def _fourier(ctx) -> dict[str, torch.Tensor]:
    if "fourier" not in ctx._cache:
        ctx._cache["fourier"] = fourier(embedding(ctx).double())
    return ctx._cache["fourier"]


MODULAR = "modular (any op)"


@metric("fourier_concentration", f"share of the token embeddings' non-constant power in their {TOP} strongest "
        "Fourier frequencies", "fraction", applies=_needs_embedding, tasks=MODULAR)
def fourier_concentration(ctx):
    return _fourier(ctx)["concentration"]


@metric("circularity", f"how circular the embeddings are in the planes of the {TOP} key frequencies: 1 - the "
        "radius's coefficient of variation, power-weighted", "fraction", applies=_needs_embedding, tasks=MODULAR)
def circularity(ctx):
    return _fourier(ctx)["circularity"]


@metric("gini_fourier", "Gini coefficient of the token embeddings' Fourier norms over the frequency classes "
        "(0 when spread evenly, near 1 for a few frequencies)", "fraction", applies=_needs_embedding, tasks=MODULAR)
def gini_fourier(ctx):
    return _fourier(ctx)["gini"]


@metric("key_frequency", "the embedding's rank-{key} Fourier frequency class k (1..p//2) by power",
        keys=lambda layout: [str(r) for r in range(1, TOP + 1)], applies=_needs_embedding, tasks=MODULAR)
def key_frequency(ctx):
    key = _fourier(ctx)["key"]
    return {str(r): key[:, r - 1] for r in range(1, TOP + 1)}


@metric("rqi", f"representation quality index (Liu et al. 2022): share of parallelograms i+j=m+n whose "
        f"standardized embedding defect is below {RQI_TOLERANCE}", "fraction", applies=_needs_sums,
        tasks="addition (op +), modular or integer")
def rqi_metric(ctx):
    return rqi(embedding(ctx).double())

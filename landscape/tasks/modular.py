"""Modular arithmetic (a op b) mod p, the grokking benchmark of Power et al. (2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Task, TaskError, cross_entropy, label_accuracy, mlp, mse, onehot_accuracy
from .transformer import Transformer

OPS = {
    "+": lambda a, b, p: (a + b) % p,
    "-": lambda a, b, p: (a - b) % p,
    "*": lambda a, b, p: (a * b) % p,
    "/": lambda a, b, p: (a * pow_mod(b, p - 2, p)) % p,
}
OP_NAMES = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def pow_mod(b: torch.Tensor, e: int, p: int) -> torch.Tensor:
    result = torch.ones_like(b)
    base = b % p
    while e:
        if e & 1:
            result = (result * base) % p
        base = (base * base) % p
        e >>= 1
    return result


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))


class TokenMLP(torch.nn.Module):
    """Learned embeddings of the two operands, concatenated, then an MLP to p logits."""

    def __init__(self, p: int, embed: int, width: int):
        super().__init__()
        self.embed = torch.nn.Embedding(p, embed)
        self.mlp = mlp([2 * embed, width, width, p], "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(x).flatten(-2))


MODELS = ("mlp", "transformer")
DEFAULTS = {"mlp": (59, 0.4), "transformer": (113, 0.3)}  # (p, train_fraction) when not given


def make(p: int | None = None, op: str = "+", train_fraction: float | None = None, loss: str = "cross_entropy",
         model: str = "mlp", embed: int = 32, width: int = 128, d_model: int = 128, heads: int = 4,
         d_head: int = 32, d_mlp: int = 512, seed: int = 0) -> Task:
    """Modular arithmetic (a op b) mod p, op in + - * /: token MLP (p 59) or Nanda's transformer (p 113)."""
    if model not in MODELS:
        raise TaskError(f"modular: model must be mlp or transformer, got {model!r}")
    p = DEFAULTS[model][0] if p is None else p
    train_fraction = DEFAULTS[model][1] if train_fraction is None else train_fraction
    op = OP_NAMES.get(op, op)
    if op not in OPS:
        raise TaskError(f"modular: op must be one of + - * / (or add sub mul div), got {op!r}")
    if not _is_prime(p):
        raise TaskError(f"modular: p must be prime, got {p}")
    if not 0 < train_fraction < 1:
        raise TaskError(f"modular: train_fraction must be in (0, 1), got {train_fraction}")
    if loss not in ("cross_entropy", "mse"):
        raise TaskError(f"modular: loss must be cross_entropy or mse, got {loss!r}")
    for name, value in (("embed", embed), ("width", width), ("d_model", d_model), ("heads", heads),
                        ("d_head", d_head), ("d_mlp", d_mlp)):
        if value < 1:
            raise TaskError(f"modular: {name} must be an integer >= 1, got {value}")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(1 if op == "/" else 0, p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    y = OPS[op](a, b, p)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(a), generator=g)
    n_train = int(round(train_fraction * len(a)))
    if not 0 < n_train < len(a):
        raise TaskError(f"modular: p={p} has {len(a)} pairs; a train fraction of {train_fraction} leaves "
                        f"{'no training' if n_train == 0 else 'no test'} pair: use a larger p or another fraction")
    tr, te = perm[:n_train], perm[n_train:]
    if model == "transformer":  # tokens a b =, with = the extra token p
        x = torch.stack([a, b, torch.full_like(a, p)], 1)
        net = lambda: Transformer(p + 1, p, 3, d_model, heads, d_head, d_mlp)  # noqa: E731
    else:
        x = torch.stack([a, b], 1)
        net = lambda: TokenMLP(p, embed, width)  # noqa: E731
    if loss == "mse":
        y = F.one_hot(y, p).float()
        loss_fn, accuracy = mse, onehot_accuracy
    else:
        loss_fn, accuracy = cross_entropy, label_accuracy
    return Task(
        name="modular",
        model=net,
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        loss=loss_fn, accuracy=accuracy, options={"p": p, "train_fraction": train_fraction},
        # the token embedding (rows 0..p-1 are the numbers) and the operation, for the order parameters
        structure={"modulus": p, "op": op, "embedding": "embed.W_E" if model == "transformer" else "embed.weight",
                   "embedding_axis": 0, **({"probe_layer": "unembed"} if model == "transformer" else {})},
    )

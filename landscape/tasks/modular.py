"""Modular arithmetic (a op b) mod p, the grokking benchmark of Power et al. (2022)."""

from __future__ import annotations

import random

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


SPLITS = ("torch", "python-random")
INITS = ("landscape", "nanda")


def _split(n: int, train_fraction: float, seed: int, how: str = "torch") -> tuple[list[int], list[int]]:
    """Training and test indices of ``n`` pairs (in row order: ``a * p + b``). ``torch``: a ``torch.randperm``
    of a generator seeded with ``seed``, the first ``round(fraction * n)``; ``python-random``: Nanda et al.'s
    ``random.seed(seed); random.shuffle(pairs)``, the first ``int(fraction * n)``."""
    if how == "python-random":
        order = list(range(n))
        random.Random(seed).shuffle(order)  # the same permutation as random.seed(seed); random.shuffle(...)
        cut = int(train_fraction * n)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        cut = int(round(train_fraction * n))
    return order[:cut], order[cut:]


def _high_precision(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the log-softmax in float64 (Nanda et al.'s ``cross_entropy_high_precision``: float32
    log-probabilities of confident predictions are multiples of 1.2e-7), returned in the logits' dtype."""
    return F.cross_entropy(output.double(), target).to(output.dtype)


def make(p: int | None = None, op: str = "+", train_fraction: float | None = None, loss: str = "cross_entropy",
         model: str = "mlp", embed: int = 32, width: int = 128, d_model: int = 128, heads: int = 4,
         d_head: int = 32, d_mlp: int = 512, seed: int = 0, split: str = "torch", classes: int = 0,
         loss_dtype: str = "float32", init: str = "landscape") -> Task:
    """Modular arithmetic (a op b) mod p, op in + - * /: token MLP (p 59) or Nanda's transformer (p 113).

    For the transformer, ``classes`` (default p) is the number of output logits (Nanda's code: p + 1, the "="
    token is a class), ``init="nanda"`` draws its parameters in Nanda's order and shapes, ``loss_dtype="float64"``
    computes the cross-entropy in float64; ``split="python-random"`` splits the pairs as Nanda's code does."""
    if model not in MODELS:
        raise TaskError(f"modular: model must be mlp or transformer, got {model!r}")
    for name, value, allowed in (("split", split, SPLITS), ("init", init, INITS),
                                 ("loss_dtype", loss_dtype, ("float32", "float64"))):
        if value not in allowed:
            raise TaskError(f"modular: {name} must be one of {', '.join(allowed)}, got {value!r}")
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
    tr, te = _split(len(a), train_fraction, seed, split)
    if not (tr and te):
        raise TaskError(f"modular: p={p} has {len(a)} pairs; a train fraction of {train_fraction} leaves "
                        f"{'no test' if tr else 'no training'} pair: use a larger p or another fraction")
    tr, te = torch.tensor(tr), torch.tensor(te)
    classes = classes or p
    if model != "transformer" and (classes != p or init != "landscape" or loss_dtype != "float32"):
        raise TaskError("modular: classes, init and loss_dtype are options of model=transformer")
    if classes < p:
        raise TaskError(f"modular: classes must be at least p = {p}, got {classes}")
    if model == "transformer":  # tokens a b =, with = the extra token p
        x = torch.stack([a, b, torch.full_like(a, p)], 1)
        net = lambda: Transformer(p + 1, classes, 3, d_model, heads, d_head, d_mlp, init)  # noqa: E731
    else:
        x = torch.stack([a, b], 1)
        net = lambda: TokenMLP(p, embed, width)  # noqa: E731
    if loss == "mse":
        y = F.one_hot(y, p).float()
        loss_fn, accuracy = mse, onehot_accuracy
    else:
        loss_fn, accuracy = (_high_precision if loss_dtype == "float64" else cross_entropy), label_accuracy
    logits = {"logits": _first(p)} if classes > p else {}  # the order parameters read the p number classes
    return Task(
        name="modular",
        model=net,
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        loss=loss_fn, accuracy=accuracy, options={"p": p, "train_fraction": train_fraction},
        # the token embedding (rows 0..p-1 are the numbers) and the operation, for the order parameters
        structure={"modulus": p, "op": op, "embedding": "embed.W_E" if model == "transformer" else "embed.weight",
                   "embedding_axis": 0, **({"probe_layer": "unembed"} if model == "transformer" else {}), **logits},
    )


class _first:
    """The first ``p`` logits (a picklable ``structure['logits']``)."""

    def __init__(self, p: int):
        self.p = p

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        return out[..., :self.p]

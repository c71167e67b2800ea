"""Nanda et al. (2023)'s one-layer transformer for modular arithmetic ("Progress measures for grokking via
mechanistic interpretability").

Input: the tokens ``a b =`` (vocabulary ``p + 1``, ``=`` is token ``p``). One
attention layer of ``heads`` heads of ``d_head``, one ReLU MLP of ``d_mlp``, no
LayerNorm, learned positional embeddings, residual stream of ``d_model``; the
logits over ``p`` classes are read at the last position. Initialization as
Nanda's: every matrix N(0, 1) / sqrt(d_model), the unembedding N(0, 1) /
sqrt(p), biases zero.

Nanda's model masks attention causally and computes every position, but the
logits are read at the last position only, and that position attends to all
three tokens under a causal mask. So this module computes exactly that
position's output: keys and values at every position, the query, the MLP
and the unembedding at the last one. The logits (and so the loss and every
gradient) are the same; a step costs about half the arithmetic.

The attention's inputs are linear in a token's one-hot code, so the keys,
values and queries are computed once per (position, token) pair, ``n_ctx x
vocab`` rows, and looked up per example, instead of once per example and
position. With thousands of examples and ~100 tokens this removes the key,
value and query products (about 40% of the arithmetic); what is left per
example is the output projection, the MLP and the unembedding.

Parameters are grouped by module (``embed``, ``attn``, ``mlp``, ``unembed``),
so ``--constrain 'attn.*'`` or the ``group_norm`` metric address one block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _normal(*shape: int, fan: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(fan))


def _rows(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table[rows]`` as an ``index_select``: under ``vmap`` the member axis stays in front (``F.embedding``'s
    batching rule moves it between the rows and the features, and every later elementwise pass then strides)."""
    return table.index_select(0, rows.reshape(-1)).unflatten(0, rows.shape)


class Embed(nn.Module):
    def __init__(self, vocab: int, n_ctx: int, d_model: int):
        super().__init__()
        self.W_E = _normal(vocab, d_model, fan=d_model)
        self.W_pos = _normal(n_ctx, d_model, fan=d_model)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding of every (position, token) pair ``[n_ctx * vocab, d_model]`` (row ``t * vocab + v``)
        and each example's rows in it ``[N, T]``."""
        vocab = self.W_E.shape[0]
        table = (self.W_pos.unsqueeze(1) + self.W_E).flatten(0, 1)
        rows = tokens + vocab * torch.arange(tokens.shape[1], device=tokens.device)
        return table, rows


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, d_head: int):
        super().__init__()
        self.W_Q = _normal(heads, d_head, d_model, fan=d_model)
        self.W_K = _normal(heads, d_head, d_model, fan=d_model)
        self.W_V = _normal(heads, d_head, d_model, fan=d_model)
        self.W_O = _normal(d_model, heads * d_head, fan=d_model)

    def forward(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The attention output at the last position ``[N, d_model]``; ``table`` and ``rows`` as ``Embed``'s.

        Keys, values and the query are products of the table, looked up per example.
        """
        heads, d_head, d_model = self.W_K.shape
        n, n_ctx = rows.shape
        pairs, vocab = table.shape[0], table.shape[0] // n_ctx
        keys = (table @ self.W_K.reshape(heads * d_head, d_model).T).unflatten(-1, (heads, d_head))
        queries = (table[-vocab:] @ self.W_Q.reshape(heads * d_head, d_model).T).unflatten(-1, (heads, d_head))
        every = torch.einsum("qhd,khd->hqk", queries, keys) / math.sqrt(d_head)  # [H, vocab, pairs]
        which = (rows[:, -1:] - (n_ctx - 1) * vocab) * pairs + rows  # [N, T]: (query token, key row)
        scores = every.flatten(1).index_select(1, which.reshape(-1)).unflatten(1, (n, n_ctx))  # [H, N, T]
        v = _rows(table @ self.W_V.reshape(heads * d_head, d_model).T, rows).unflatten(-1, (heads, d_head))
        z = (scores.softmax(-1).permute(1, 2, 0).unsqueeze(-1) * v).sum(1)  # [N, H, D]
        return z.flatten(-2) @ self.W_O.T


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.W_in = _normal(d_mlp, d_model, fan=d_model)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _normal(d_model, d_mlp, fan=d_model)
        self.b_out = nn.Parameter(torch.zeros(d_model))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return F.linear(F.relu(F.linear(r, self.W_in, self.b_in)), self.W_out, self.b_out)


class Unembed(nn.Module):
    def __init__(self, d_model: int, n_out: int):
        super().__init__()
        self.W_U = _normal(d_model, n_out, fan=n_out)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.W_U


class Transformer(nn.Module):
    """One attention layer and one MLP on a residual stream; logits at the last position: ``[N, T] -> [N, n_out]``."""

    def __init__(self, vocab: int, n_out: int, n_ctx: int = 3, d_model: int = 128, heads: int = 4,
                 d_head: int = 32, d_mlp: int = 512, init: str = "landscape"):
        super().__init__()
        with torch.random.fork_rng(devices=[], enabled=init == "nanda"):  # then drawn below, in Nanda's order
            self.embed = Embed(vocab, n_ctx, d_model)
            self.attn = Attention(d_model, heads, d_head)
            self.mlp = MLP(d_model, d_mlp)
            self.unembed = Unembed(d_model, n_out)
        if init == "nanda":
            self.draw_as_nanda()

    @torch.no_grad()
    def draw_as_nanda(self) -> None:
        """Redraw every matrix from torch's global generator in the order and shapes of Nanda et al.'s
        ``transformers.py`` (``Embed.W_E [d_model, d_vocab]``, ``PosEmbed.W_pos``, then ``W_K``, ``W_Q``,
        ``W_V``, ``W_O``, ``W_in``, ``W_out``, ``W_U``), each with its scaling; biases stay zero."""
        e, a, m = self.embed, self.attn, self.mlp
        d_model = e.W_E.shape[1]
        e.W_E.copy_((torch.randn(d_model, e.W_E.shape[0]) / math.sqrt(d_model)).T)
        for w in (e.W_pos, a.W_K, a.W_Q, a.W_V, a.W_O, m.W_in, m.W_out):
            w.copy_(torch.randn(w.shape) / math.sqrt(d_model))
        self.unembed.W_U.copy_(torch.randn(self.unembed.W_U.shape) / math.sqrt(self.unembed.W_U.shape[1]))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        table, rows = self.embed(tokens)
        r = _rows(table, rows[:, -1]) + self.attn(table, rows)
        r = r + self.mlp(r)
        return self.unembed(r)

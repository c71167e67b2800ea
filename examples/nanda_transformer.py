"""Nanda et al.'s transformer as your own model, every order parameter checked
===========================================================================

Your own transformer, written as research code writes it, with every order parameter logged and right.

The model below follows the style of Nanda et al. (2023)'s original one-layer transformer for modular addition:
einsum attention with a causal mask, identity "hook point" modules around every activation, the token embedding
stored as ``W_E: [d_model, d_vocab]``, logits at every position ``[N, positions, d_vocab]`` and a vocabulary of
p + 1 tokens for input and output (``=`` is token p). landscape is told, once, in ``Task.structure``, what its
order parameters read:

* ``embedding="embed.W_E"`` with ``embedding_axis=1``: the tokens index the second axis of ``W_E``;
* ``logits=lambda out: out[:, -1]``: the progress measures read the logits at the last position;
* ``probe_layer="blocks.0.hook_resid_post"``, ``probe_at="output"``, ``probe_map=lambda h: h[:, -1]``: the probe
  reads the residual stream after the block, at the last position.

Run it (``python examples/nanda_transformer.py [FIGURE.png]``, about 10 s on two CPU cores): it trains a small
copy on (a + b) mod 23 through the Python API, then recomputes every order parameter from the final weights
directly (NumPy on the token axis, the model's own hook) and prints both. As a task for the command line::

    PYTHONPATH=examples landscape train --task nanda_transformer:make --steps 300
"""

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.tasks import Task


class HookPoint(nn.Module):
    """The identity, there to be hooked: what flows through it can be read by name."""

    def forward(self, x):
        return x


class Embed(nn.Module):
    def __init__(self, d_vocab, d_model):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(d_model, d_vocab) / math.sqrt(d_model))

    def forward(self, tokens):
        return torch.einsum("dbp->bpd", self.W_E[:, tokens])


class PosEmbed(nn.Module):
    def __init__(self, n_ctx, d_model):
        super().__init__()
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d_model) / math.sqrt(d_model))

    def forward(self, x):
        return x + self.W_pos[:x.shape[-2]]


class Attention(nn.Module):
    def __init__(self, d_model, heads, d_head, n_ctx):
        super().__init__()
        self.W_K = nn.Parameter(torch.randn(heads, d_head, d_model) / math.sqrt(d_model))
        self.W_Q = nn.Parameter(torch.randn(heads, d_head, d_model) / math.sqrt(d_model))
        self.W_V = nn.Parameter(torch.randn(heads, d_head, d_model) / math.sqrt(d_model))
        self.W_O = nn.Parameter(torch.randn(d_model, heads * d_head) / math.sqrt(d_model))
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx)))
        self.d_head = d_head
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern, self.hook_z = HookPoint(), HookPoint()

    def forward(self, x):
        k = self.hook_k(torch.einsum("ihd,bpd->biph", self.W_K, x))
        q = self.hook_q(torch.einsum("ihd,bpd->biph", self.W_Q, x))
        v = self.hook_v(torch.einsum("ihd,bpd->biph", self.W_V, x))
        n = x.shape[-2]
        scores = torch.einsum("biph,biqh->biqp", k, q)
        scores = torch.tril(scores) - 1e10 * (1 - self.mask[:n, :n])
        pattern = self.hook_pattern(F.softmax(scores / math.sqrt(self.d_head), dim=-1))
        z = self.hook_z(torch.einsum("biph,biqp->biqh", v, pattern))
        z = z.permute(0, 2, 1, 3).flatten(-2)  # [batch, position, heads * d_head]
        return torch.einsum("df,bqf->bqd", self.W_O, z)


class MLP(nn.Module):
    def __init__(self, d_model, d_mlp):
        super().__init__()
        self.W_in = nn.Parameter(torch.randn(d_mlp, d_model) / math.sqrt(d_model))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.randn(d_model, d_mlp) / math.sqrt(d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.hook_post = HookPoint()

    def forward(self, x):
        h = self.hook_post(F.relu(torch.einsum("md,bpd->bpm", self.W_in, x) + self.b_in))
        return torch.einsum("dm,bpm->bpd", self.W_out, h) + self.b_out


class Block(nn.Module):
    def __init__(self, d_model, d_mlp, heads, d_head, n_ctx):
        super().__init__()
        self.attn = Attention(d_model, heads, d_head, n_ctx)
        self.mlp = MLP(d_model, d_mlp)
        self.hook_resid_mid, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x):
        x = self.hook_resid_mid(x + self.attn(x))
        return self.hook_resid_post(x + self.mlp(x))


class Unembed(nn.Module):
    def __init__(self, d_vocab, d_model):
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(d_model, d_vocab) / math.sqrt(d_vocab))

    def forward(self, x):
        return x @ self.W_U


class Transformer(nn.Module):
    """Tokens ``[batch, 3]`` -> logits at every position ``[batch, 3, d_vocab]``."""

    def __init__(self, d_vocab, d_model=32, d_mlp=128, heads=4, d_head=8, n_ctx=3):
        super().__init__()
        self.embed = Embed(d_vocab, d_model)
        self.pos_embed = PosEmbed(n_ctx, d_model)
        self.blocks = nn.ModuleList([Block(d_model, d_mlp, heads, d_head, n_ctx)])
        self.unembed = Unembed(d_vocab, d_model)

    def forward(self, tokens):
        x = self.pos_embed(self.embed(tokens))
        for block in self.blocks:
            x = block(x)
        return self.unembed(x)


def last_position_loss(logits, labels):
    return F.cross_entropy(logits[:, -1], labels)


def last_position_accuracy(logits, labels):
    return (logits[:, -1].argmax(-1) == labels).float().mean()


STRUCTURE = {
    "embedding": "embed.W_E", "embedding_axis": 1,  # W_E is [d_model, d_vocab]: tokens on axis 1
    "logits": lambda out: out[:, -1],  # [N, d_vocab] at the "=" position
    "probe_layer": "blocks.0.hook_resid_post", "probe_at": "output", "probe_map": lambda h: h[:, -1],
}


def make(p: int = 23, train_fraction: float = 0.5, d_model: int = 32, d_mlp: int = 128, heads: int = 4,
         d_head: int = 8, seed: int = 0) -> Task:
    """(a + b) mod p on Nanda-style tokens ``a b =``: all p² pairs, a random ``train_fraction`` for training."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], 1)
    y = (x[:, 0] + x[:, 1]) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = int(train_fraction * p * p)
    train, test = order[:n], order[n:]
    return Task("nanda-transformer", lambda: Transformer(p + 1, d_model, d_mlp, heads, d_head), x[train], y[train],
                x[test], y[test], loss=last_position_loss, accuracy=last_position_accuracy,
                structure={"modulus": p, "op": "+", **STRUCTURE})


def direct(task: Task, theta: np.ndarray) -> dict[str, float]:
    """Every logged order parameter, recomputed from the final weights with no help from the metrics' code
    paths that read the model: the embedding on its token axis, the logits and residuals from the model's hooks."""
    from landscape.engine.layout import flatten, layout_of, load_flat
    from landscape.metrics.embedding import fourier, rqi
    from landscape.metrics.probe import ridge_r2
    from landscape.metrics.progress import progress

    p = task.structure["modulus"]
    model = task.model()
    layout = layout_of(model)
    load_flat(model, layout, torch.as_tensor(theta, dtype=flatten(model, layout).dtype))
    E = model.embed.W_E.detach().T[:p].double()  # tokens 0..p-1 on the token axis
    centred = (E - E.mean(0)).numpy()
    power = (np.abs(np.fft.rfft(centred, axis=0)[1:p // 2 + 1]) ** 2).sum(1)
    share = np.sort(power / power.sum())[::-1]
    four = fourier(E[None])
    out = {"fourier_concentration": float(share[:5].sum()), "circularity": float(four["circularity"][0]),
           "gini_fourier": float(four["gini"][0]), "rqi": float(rqi(E[None])[0])}
    for r in range(5):
        out[f"key_frequency_{r + 1}"] = float(four["key"][0, r])
    seen = {}
    model.blocks[0].hook_resid_post.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o[:, -1]))
    logits, resid, labels = {}, {}, {}
    with torch.no_grad():
        for split, (x, y) in {"train": (task.x_train, task.y_train), "test": (task.x_test, task.y_test)}.items():
            logits[split] = model(x)[:, -1][None]
            resid[split], labels[split] = seen["h"][None], y
    sums = {s: (x[:, 0] + x[:, 1]) % p for s, x in (("train", task.x_train), ("test", task.x_test))}
    restricted, excluded = progress(logits, sums, four["key"], p)
    out["restricted_loss"] = float(F.cross_entropy(restricted["test"][0], labels["test"]))
    out["excluded_loss"] = float(F.cross_entropy(excluded["train"][0], labels["train"]))
    onehot = {s: F.one_hot(labels[s], p + 1).double() for s in labels}  # every class the labels can take
    onehot = {s: v[:, :int(max(labels["train"].max(), labels["test"].max())) + 1] for s, v in onehot.items()}
    out["probe_r2"] = float(ridge_r2(resid["train"], onehot["train"], resid["test"], onehot["test"])[0])
    return out


def main(figure: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import landscape as ls
    from landscape.store import final_params

    task = make()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "nanda.h5"
        steps, start = 400, time.perf_counter()
        run = ls.train(task, out=out, steps=steps, lr=3e-3, weight_decay=1.0, log_every=20, quiet=True)
        seconds = time.perf_counter() - start
        run = run.squeeze("trajectory")
        theta, _ = final_params(out, str(run.trajectory.values))
    end = run.isel(step=-1)
    print(f"engine {run.attrs['engine']}: {steps} steps in {seconds:.1f} s, {seconds / steps:.4f} s per step; "
          f"train loss {float(end.train_loss):.3g}, test loss {float(end.test_loss):.3g}")
    print(f"{'order parameter':<24} {'logged':>12} {'direct':>12}")
    for name, value in direct(task, theta).items():
        print(f"{name:<24} {float(end[name]):12.6g} {value:12.6g}")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(run.step, run.train_loss, label="train")
    ax[0].plot(run.step, run.test_loss, label="test")
    ax[0].set(yscale="log", xlabel="step", ylabel="loss", title="Nanda-style transformer, (a + b) mod 23")
    ax[0].legend()
    for name in ("fourier_concentration", "rqi", "probe_r2"):
        ax[1].plot(run.step, run[name], label=name)
    ax[1].set(xlabel="step", title="order parameters")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nanda_transformer.png")

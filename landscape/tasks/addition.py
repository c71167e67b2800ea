"""Liu et al. (2022)'s toy model of grokking: integer addition a + b of 0..p-1 through learned embeddings.

"Towards Understanding Grokking: An Effective Theory of Representation Learning" (NeurIPS 2022), following their
public code (``ejmichaud/grokking-squared``, ``toy/train_add.py``): the samples are the unordered pairs a <= b of
0..p-1 (p (p + 1) / 2 of them); each integer has a trainable embedding ``E_a`` (``embed``, ``[p, dim]``, uniform in
[-1/2, 1/2)), and a decoder MLP (tanh, two hidden layers of ``width``) reads ``E_a + E_b``, so the model can only
generalize through how the embeddings are arranged. The target of a sum s = a + b is a fixed random vector ``Y_s``
(``targets`` dimensions, standard normal, one per sum 0..2p-2); the loss is the mean squared error to it, and the
prediction is the nearest target. ``loss="cross_entropy"`` trains 2p - 1 logits instead (their ``loss_type="CE"``).

Their representation and decoder learning rates (eta1, eta2) are separate: ``landscape train --group embed
--group-lr ETA1 --lr ETA2``. Their split draws ``train_count`` pairs at random (45 of 55 by default); here the
draw is a ``torch.randperm`` seeded by ``seed``, and the test split is the other pairs.
"""

from __future__ import annotations

import torch

from . import Task, TaskError, cross_entropy, label_accuracy, mlp, mse


class Toy(torch.nn.Module):
    """Embeddings of 0..p-1 added, then a tanh MLP: ``decoder(E[a] + E[b])``."""

    def __init__(self, p: int, dim: int, width: int, out: int):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.rand(p, dim) - 0.5)
        self.decoder = mlp([dim, width, width, out], "tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.embed[x[..., 0]] + self.embed[x[..., 1]])


class NearestTarget:
    """Accuracy of a regression onto class targets: the share of outputs whose nearest target (Euclidean) is the
    example's own (Liu et al.'s prediction). Picklable, written with torch operations (it runs under vmap)."""

    def __init__(self, targets: torch.Tensor):
        self.targets = targets

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        T = self.targets.to(output)
        predicted = torch.cdist(output, T).argmin(-1)
        true = torch.cdist(target.to(output), T).argmin(-1)
        return (predicted == true).to(output.dtype).mean()


def pairs(p: int) -> torch.Tensor:
    """The unordered pairs a <= b of 0..p-1, ``[p (p + 1) / 2, 2]``, in Liu et al.'s order."""
    a, b = torch.triu_indices(p, p)
    return torch.stack([a, b], 1)


def make(p: int = 10, dim: int = 1, width: int = 200, targets: int = 30, train_count: int = 45,
         train_fraction: float | None = None, loss: str = "mse", seed: int = 0) -> Task:
    """Liu et al.'s toy addition a + b of 0..p-1 (p 10): added embeddings, tanh decoder, MSE to random targets.

    ``train_fraction`` (of the p (p + 1) / 2 pairs), when given, replaces ``train_count``."""
    if p < 2:
        raise TaskError(f"addition: p must be at least 2, got {p}")
    for name, value in (("dim", dim), ("width", width), ("targets", targets)):
        if value < 1:
            raise TaskError(f"addition: {name} must be an integer >= 1, got {value}")
    if loss not in ("mse", "cross_entropy"):
        raise TaskError(f"addition: loss must be mse or cross_entropy, got {loss!r}")
    x = pairs(p)
    n = len(x)
    if train_fraction is not None:
        if not 0 < train_fraction < 1:
            raise TaskError(f"addition: train_fraction must be in (0, 1), got {train_fraction}")
        train_count = int(round(train_fraction * n))
    if not 1 <= train_count < n:
        raise TaskError(f"addition: p={p} has {n} pairs; train_count must be in 1..{n - 1} (the rest is the test "
                        f"split), got {train_count}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    tr, te = order[:train_count], order[train_count:]
    s = x.sum(1)
    if loss == "mse":
        Y = torch.randn(2 * p - 1, targets, generator=g)
        y, loss_fn, accuracy, out = Y[s], mse, NearestTarget(Y), targets
    else:
        y, loss_fn, accuracy, out = s, cross_entropy, label_accuracy, 2 * p - 1
    return Task(
        name="addition",
        model=lambda: Toy(p, dim, width, out),
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        loss=loss_fn, accuracy=accuracy,
        options={"p": p, "train_count": train_count},
        structure={"modulus": p, "op": "+", "modular": False, "embedding": "embed", "embedding_axis": 0},
    )

"""A graph network on molecules, on the vmap engine
================================================

A message-passing graph network, like Omnigrok's QM9 model, on molecules packed by landscape.

Omnigrok's QM9 network is two edge-conditioned convolutions (``NNConv``: a small MLP of each bond's features gives
the matrix that carries a message along it), a sum over each molecule's atoms, and two linear layers to one number
(the polarizability), trained with MSE. Here the same network is written twice:

* in plain torch (:class:`EdgeNet`), on the padded batch that ``landscape.tasks.graphs.pack`` makes of a list of
  graphs (``{"nodes", "node_mask", "edges", "edge_attr", "edge_mask"}``, one row per molecule): it runs on the
  batched ``vmap`` engine;
* with torch-geometric's ``NNConv`` and ``global_add_pool`` when torch-geometric is installed
  (:class:`GeometricNet`, ``make(pyg=True)``, ``--pyg``), reading the same packed batch through ``graphs.flat``.
  ``flat`` drops the padding with boolean masks, which ``vmap`` cannot batch, so ``auto`` runs this one on the loop
  engine and says so.

The molecules are generated (a random tree of 4-9 atoms of 5 kinds plus a few rings; 11 atom and 4 bond features
as in QM9) and the target is a sum of atom and bond contributions with a nonlinearity, so the example needs no
download. With torch-geometric installed and QM9 already on disk, ``make(qm9="ROOT")`` reads the real molecules
(``--qm9 ROOT``, ``torch_geometric.datasets.QM9(ROOT)``, target 1, the polarizability); get the files from
https://figshare.com/collections/_/978904 (torch-geometric's QM9 layout) -- this example never downloads them.

Run it (``python examples/graph_network.py [FIGURE.png] [--pyg] [--qm9 ROOT]``, about 10 s on two CPU cores), or
from the shell::

    PYTHONPATH=examples landscape scan --task graph_network:make --norms 0.5:3:6 --steps 200
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape.tasks import Task, TaskError, graphs, mse

NODE_FEATURES, EDGE_FEATURES = 11, 4


def molecules(count: int, seed: int = 0):
    """``count`` random molecule-like graphs (dicts of x, edge_index, edge_attr) and their targets ``[count, 1]``."""
    g = torch.Generator().manual_seed(seed)
    atom_weight = torch.tensor([1.0, 2.5, 3.0, 1.8, 0.6])
    bond_weight = torch.tensor([0.3, 0.8, 1.2, 0.5])
    found, targets = [], []
    for _ in range(count):
        n = int(torch.randint(4, 10, (1,), generator=g))
        kind = torch.randint(0, 5, (n,), generator=g)
        x = torch.zeros(n, NODE_FEATURES)
        x[torch.arange(n), kind] = 1
        x[:, 5:] = torch.rand(n, NODE_FEATURES - 5, generator=g)
        parent = [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, n)]
        pairs = list(zip(range(1, n), parent))
        if n > 4 and torch.rand(1, generator=g) < 0.5:  # a ring
            pairs.append((n - 1, 0))
        bond = torch.randint(0, 4, (len(pairs),), generator=g)
        src = [a for a, b in pairs] + [b for a, b in pairs]  # both directions
        dst = [b for a, b in pairs] + [a for a, b in pairs]
        attr = F.one_hot(torch.cat([bond, bond]), EDGE_FEATURES).float()
        found.append({"x": x, "edge_index": torch.tensor([src, dst]), "edge_attr": attr})
        y = atom_weight[kind].sum() + bond_weight[bond].sum() + torch.tanh(x[:, 5:].sum() - 3 * n / 2)
        targets.append(y / 10)
    return found, torch.stack(targets)[:, None]


class EdgeConv(nn.Module):
    """``NNConv`` on a packed batch: node i gets the sum over its incoming edges j -> i of ``h_j @ net(e_ji)``,
    plus ``h_i @ root + bias``."""

    def __init__(self, n_in, n_out, net):
        super().__init__()
        self.n_in, self.n_out, self.net = n_in, n_out, net
        self.root = nn.Linear(n_in, n_out)

    def forward(self, h, batch):
        src, dst = batch["edges"][..., 0], batch["edges"][..., 1]  # [G, E]
        weights = self.net(batch["edge_attr"]).unflatten(-1, (self.n_in, self.n_out))  # [G, E, in, out]
        h_src = h.gather(1, src[..., None].expand(-1, -1, h.shape[-1]))
        message = torch.einsum("gei,geio->geo", h_src, weights) * batch["edge_mask"][..., None]
        total = torch.zeros(*h.shape[:2], self.n_out, dtype=h.dtype, device=h.device)
        return total.scatter_add(1, dst[..., None].expand(-1, -1, self.n_out), message) + self.root(h)


def _edge_net(n_out):
    return nn.Sequential(nn.Linear(EDGE_FEATURES, 32), nn.ReLU(), nn.Linear(32, n_out))


class EdgeNet(nn.Module):
    """Omnigrok's QM9 network in plain torch: two edge-conditioned convolutions, a sum over atoms, two linears."""

    def __init__(self, node_features=NODE_FEATURES):
        super().__init__()
        self.conv1 = EdgeConv(node_features, 32, _edge_net(node_features * 32))
        self.conv2 = EdgeConv(32, 16, _edge_net(32 * 16))
        self.fc_1 = nn.Linear(16, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, batch):
        h = F.relu(self.conv1(batch["nodes"], batch))
        h = F.relu(self.conv2(h, batch)) * batch["node_mask"][..., None]
        return self.out(F.relu(self.fc_1(h.sum(1))))


class GeometricNet(nn.Module):
    """The same network with torch-geometric's layers, on the flat form of the packed batch."""

    def __init__(self, node_features=NODE_FEATURES):
        super().__init__()
        from torch_geometric.nn import NNConv

        self.conv1 = NNConv(node_features, 32, _edge_net(node_features * 32))
        self.conv2 = NNConv(32, 16, _edge_net(32 * 16))
        self.fc_1 = nn.Linear(16, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, batch):
        from torch_geometric.nn import global_add_pool

        x, edge_index, edge_attr, graph = graphs.flat(batch)
        x = F.relu(self.conv1(x, edge_index, edge_attr))
        x = F.relu(self.conv2(x, edge_index, edge_attr))
        x = global_add_pool(x, graph, size=batch["node_mask"].shape[0])
        return self.out(F.relu(self.fc_1(x)))


def _qm9(root: str, count: int):
    """The first ``count`` molecules of QM9 under ``root`` (torch-geometric's ``raw/`` and ``processed/`` layout)
    and their polarizability (target 1). torch-geometric's ``QM9`` downloads missing raw files; here a missing
    file is an error instead."""
    try:
        from torch_geometric.datasets import QM9
    except ImportError:
        raise TaskError("graph_network: qm9=ROOT needs torch-geometric (pip install torch-geometric)") from None

    class OnDisk(QM9):
        def download(self):
            raise TaskError(f"graph_network: no QM9 files under {root!r} ({', '.join(self.raw_file_names)} in "
                            f"{self.raw_dir}); get them from https://figshare.com/collections/_/978904 -- this "
                            "example never downloads them")

    data = OnDisk(root)
    if len(data) < count:
        raise TaskError(f"graph_network: {root!r} holds {len(data)} molecules, asked for {count}")
    data = data[:count]
    return list(data), torch.stack([d.y[0, 1] for d in data])[:, None]


def make(size: int = 100, seed: int = 0, pyg: bool = False, qm9: str = "") -> Task:
    """``size`` molecules (half for training, as Omnigrok's QM9 runs) -> a polarizability-like number, MSE."""
    found, y = _qm9(qm9, size) if qm9 else molecules(size, seed)
    x = graphs.pack(found)
    half = size // 2
    if pyg:
        try:
            import torch_geometric  # noqa: F401
        except ImportError:
            raise TaskError("graph_network: pyg=true needs torch-geometric (pip install torch-geometric)") from None
    model = GeometricNet if pyg else EdgeNet
    train = {k: v[:half] for k, v in x.items()}
    test = {k: v[half:] for k, v in x.items()}
    return Task("graph-network", model, train, y[:half], test, y[half:], loss=mse)


def main(figure: str, pyg: bool = False, qm9: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import landscape as ls

    task = make(pyg=pyg, qm9=qm9)
    steps = 60
    start = time.perf_counter()  # not quiet: with pyg, the engine's fallback note goes to stderr
    scan = ls.scan(task, norms="0.3:3:5:log", steps=steps, lr=0.01)
    seconds = time.perf_counter() - start
    print(f"engine {scan.attrs['engine']}: {scan.sizes['norm']} norms x {steps} steps in {seconds:.1f} s "
          f"({seconds / steps:.3f} s a step for all norms)")
    best = scan.min("restart")
    print(best[["alpha", "train_loss", "test_loss"]].to_dataframe().round(5))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(best.norm, best.train_loss, "o-", label="train")
    ax.plot(best.norm, best.test_loss, "o-", label="test")
    ax.set(xscale="log", yscale="log", xlabel="weight norm $w$", ylabel="MSE",
           title="Edge-conditioned graph network, reduced landscape")
    ax.legend()
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description='A graph network on molecules, on the vmap engine')
    ap.add_argument("figure", nargs="?", default="graph_network.png")
    ap.add_argument("--pyg", action="store_true", help="torch-geometric's NNConv (needs torch-geometric)")
    ap.add_argument("--qm9", default="", metavar="ROOT", help="QM9 already on disk (never downloaded)")
    args = ap.parse_args()
    main(args.figure, args.pyg, args.qm9)

"""Graphs as task inputs: a list of graphs packed into one dict of padded tensors, one row per graph.

A graph network's training set is many small graphs of different sizes. :func:`pack` pads them to the largest
one, so the inputs are a dict of tensors whose first axis indexes the graphs (``landscape.tasks.inputs``): the
ensemble batches it like any input and a minibatch takes whole graphs. ``nodes`` and ``edge_attr`` are zero and
``node_mask``/``edge_mask`` 0 on the padding; padded edges point from node 0 to node 0. :func:`flat` turns a
packed batch back into the flat ``(x, edge_index, edge_attr, batch)`` form that torch-geometric layers read, inside
a model's ``forward``.

>>> import torch
>>> g = [{"x": torch.ones(3, 2), "edge_index": torch.tensor([[0, 1], [1, 2]]), "edge_attr": torch.ones(2, 1)},
...      {"x": torch.ones(2, 2), "edge_index": torch.tensor([[0], [1]]), "edge_attr": torch.ones(1, 1)}]
>>> {k: list(v.shape) for k, v in pack(g).items()}
{'nodes': [2, 3, 2], 'node_mask': [2, 3], 'edges': [2, 2, 2], 'edge_attr': [2, 2, 1], 'edge_mask': [2, 2]}
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def _field(graph: Any, name: str, index: int) -> torch.Tensor:
    """Field ``name`` of a dict or an object (torch-geometric's ``Data``), entry ``index`` of a tuple."""
    if isinstance(graph, dict):
        value = graph.get(name)
    elif isinstance(graph, (tuple, list)):
        value = graph[index] if len(graph) > index else None
    else:
        value = getattr(graph, name, None)
    if value is None:
        raise ValueError(f"pack: a graph has no {name}")
    return torch.as_tensor(value)


def pack(graphs: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Graphs given as dicts (or objects such as torch-geometric's ``Data``) with ``x [n, F]``, ``edge_index
    [2, e]`` (source row, target row) and ``edge_attr [e, Fe]``, or as ``(x, edge_index, edge_attr)`` tuples, as
    ``{"nodes": [G, n_max, F], "node_mask": [G, n_max], "edges": [G, e_max, 2], "edge_attr": [G, e_max, Fe],
    "edge_mask": [G, e_max]}``."""
    if len(graphs) == 0:
        raise ValueError("pack: no graphs")
    xs = [_field(g, "x", 0).float() for g in graphs]
    ei = [_field(g, "edge_index", 1).long() for g in graphs]
    ea = [_field(g, "edge_attr", 2).float() for g in graphs]
    ea = [a[:, None] if a.dim() == 1 else a for a in ea]
    n, e = max(len(x) for x in xs), max(i.shape[1] for i in ei)
    G, F, Fe = len(graphs), xs[0].shape[1], ea[0].shape[1]
    out = {"nodes": torch.zeros(G, n, F), "node_mask": torch.zeros(G, n), "edges": torch.zeros(G, e, 2,
           dtype=torch.long), "edge_attr": torch.zeros(G, e, Fe), "edge_mask": torch.zeros(G, e)}
    for k, (x, i, a) in enumerate(zip(xs, ei, ea)):
        if i.dim() != 2 or i.shape[0] != 2 or len(a) != i.shape[1] or (i.numel() and int(i.max()) >= len(x)):
            raise ValueError(f"pack: graph {k}: edge_index {list(i.shape)} and edge_attr {list(a.shape)} do not fit "
                             f"its {len(x)} nodes")
        out["nodes"][k, :len(x)] = x
        out["node_mask"][k, :len(x)] = 1
        out["edges"][k, :i.shape[1]] = i.T
        out["edge_attr"][k, :len(a)] = a
        out["edge_mask"][k, :len(a)] = 1
    return out


def flat(batch: dict[str, torch.Tensor]):
    """A packed batch as torch-geometric reads one: ``(x [nodes, F], edge_index [2, edges], edge_attr [edges, Fe],
    batch [nodes])``, the padding dropped and each graph's node numbers offset."""
    G, n = batch["node_mask"].shape
    keep_nodes = batch["node_mask"].reshape(-1) > 0
    keep_edges = batch["edge_mask"].reshape(-1) > 0
    offset = (torch.arange(G, device=batch["edges"].device) * n)[:, None, None]
    edge_index = (batch["edges"] + offset).reshape(-1, 2)[keep_edges]
    renumber = torch.cumsum(keep_nodes.long(), 0) - 1  # old flat node number -> new one
    x = batch["nodes"].reshape(G * n, -1)[keep_nodes]
    graph = torch.arange(G, device=x.device).repeat_interleave(n)[keep_nodes]
    return x, renumber[edge_index].T.contiguous(), batch["edge_attr"].reshape(G * batch["edges"].shape[1],
                                                                           -1)[keep_edges], graph

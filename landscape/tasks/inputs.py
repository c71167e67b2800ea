"""Inputs that are not one dense tensor: a task's ``x`` may be a dict, tuple or list of tensors (nested).

Token ids with padding and their lengths, a graph's node features, edges and masks, several modalities: each
is a tensor whose first axis indexes the examples, gathered in a dict (or tuple) that the model's ``forward``
receives as its one argument. The ensemble batches such inputs like a tensor (``torch.func.vmap`` maps over
dicts and tuples), and a minibatch takes the same examples from every entry. These pure functions are what the
rest of the package uses to read them; a tensor is the one-leaf case.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch


def leaves(x: Any, path: str = "x") -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` of every entry of ``x`` in a fixed order (dict keys sorted): ``x['tokens']``, ``x[0]``."""
    if isinstance(x, dict):
        for k in sorted(x, key=str):
            yield from leaves(x[k], f"{path}[{k!r}]")
    elif isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], x: Any) -> Any:
    """``x`` with ``fn`` applied to every tensor, the dicts, tuples (named ones too) and lists kept."""
    if isinstance(x, dict):
        return {k: tree_map(fn, v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        mapped = [tree_map(fn, v) for v in x]
        return type(x)(*mapped) if hasattr(x, "_fields") else type(x)(mapped)  # a namedtuple takes fields
    return fn(x)


def take(x: Any, index) -> Any:
    """The examples ``index`` (a slice, or integer indices of any shape: ``[M, B]`` gives every leaf a
    leading ``[M, B]``) of every entry."""
    return tree_map(lambda t: t[index], x)


def to(x: Any, device) -> Any:
    return tree_map(lambda t: t.to(device), x)


def is_tensor(x: Any) -> bool:
    """True for the plain case, one dense tensor."""
    return isinstance(x, torch.Tensor)


def check(x: Any, name: str, examples: int) -> str | None:
    """None when ``x`` is a tensor, or a nest of dicts, tuples and lists of tensors, each with ``examples``
    rows; else what is wrong (one line naming the entry)."""
    found = list(leaves(x, name))
    if not found:
        return f"{name} holds no tensor"
    for path, leaf in found:
        if not isinstance(leaf, torch.Tensor):
            return f"{path} is a {type(leaf).__name__}; inputs are tensors, or dicts, tuples or lists of tensors"
        if leaf.dim() == 0 or leaf.shape[0] != examples:
            shape = list(leaf.shape)
            return f"{path} has shape {shape}: every input entry needs one row per example ({examples})"
    return None


def describe(x: Any) -> str:
    """The shapes, as an error message shows them: ``[2, 3]`` or ``{'tokens': [2, 30], 'lengths': [2]}``."""
    if isinstance(x, torch.Tensor):
        return str(list(x.shape))
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (tuple, list)):
        inner = ", ".join(describe(v) for v in x)
        return f"({inner}{',' if len(x) == 1 else ''})" if isinstance(x, tuple) else f"[{inner}]"
    return type(x).__name__

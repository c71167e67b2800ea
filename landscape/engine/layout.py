"""The layout of a model's parameters in one flat vector: which named parameter each slice of ``theta`` is, which
are held on the sphere (constrained) and in which norm group. Every engine and the store read parameters through
it; ``landscape.engine.ensemble`` computes with the flat vectors it describes."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """Names, shapes and constrained flags of a model's trainable parameters, in flat order.

    ``group`` (a two-norm scan only) numbers each parameter's norm group, 1 or 2, and 0 for free ones; the
    constrained set is then a product of two spheres.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    constrained: tuple[bool, ...]
    group: tuple[int, ...] = ()

    @property
    def n_groups(self) -> int:
        """Norm groups of the constraint: 1 (one sphere) or 2 (a product of spheres)."""
        return max(self.group, default=0) or 1

    @property
    def numels(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def mask(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[P]`` tensor: 1 on constrained coordinates, 0 on free ones."""
        parts = [torch.full((n,), float(c)) for n, c in zip(self.numels, self.constrained)]
        return torch.cat(parts).to(device=device, dtype=dtype)

    def group_mask(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[G, P]`` tensor: row g is 1 on the coordinates of norm group g + 1."""
        rows = torch.arange(1, self.n_groups + 1).unsqueeze(1)
        parts = [(rows == g).float().expand(-1, n) for n, g in zip(self.numels, self.group)]
        return torch.cat(parts, dim=1).to(device=device, dtype=dtype)

    def sphere_mask(self, device=None) -> torch.Tensor | None:
        """The mask for ``landscape.engine.sphere``: None when every coordinate is constrained (its fast path),
        ``[G, P]`` for two norm groups."""
        if self.n_groups > 1:
            return self.group_mask(device)
        return None if all(self.constrained) else self.mask(device)

    def matching(self, globs: str) -> list[str]:
        """The parameters whose names match ``globs`` (comma-separated)."""
        patterns = [g.strip() for g in globs.split(",") if g.strip()]
        return [n for n in self.names if any(fnmatch.fnmatchcase(n, g) for g in patterns)]

    def names_mask(self, names, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[P]`` tensor: 1 on the coordinates of the parameters ``names``, 0 elsewhere."""
        chosen = set(names)
        parts = [torch.full((n,), float(name in chosen)) for n, name in zip(self.numels, self.names)]
        return torch.cat(parts).to(device=device, dtype=dtype)

    def group_names(self, g: int) -> list[str]:
        """The parameters of norm group ``g`` (1-based)."""
        return [n for n, k in zip(self.names, self.group) if k == g]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of one member's flat vector, keyed by parameter name."""
        pieces = torch.split(flat, self.numels, dim=-1)
        return {n: p.reshape(*flat.shape[:-1], *s) for n, p, s in zip(self.names, pieces, self.shapes)}


def layout_of(module: torch.nn.Module, constrain: str = "*", groups: list[str] | None = None) -> Layout:
    """The layout of ``module``'s trainable parameters; ``constrain`` is a glob (or comma list of globs).

    ``groups`` (a two-norm scan's globs) puts each constrained parameter in the first group whose glob matches
    it; a parameter no group matches is free.
    """
    globs = [g.strip() for g in constrain.split(",") if g.strip()]
    items = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    flags = tuple(any(fnmatch.fnmatchcase(n, g) for g in globs) for n, _ in items)
    names, shapes = tuple(n for n, _ in items), tuple(tuple(p.shape) for _, p in items)
    if not groups:
        return Layout(names, shapes, flags)
    group = tuple(next((k + 1 for k, g in enumerate(groups) if fnmatch.fnmatchcase(n, g)), 0) if c else 0
                  for n, c in zip(names, flags))
    return Layout(names, shapes, tuple(g > 0 for g in group), group)


def flatten(module: torch.nn.Module, layout: Layout) -> torch.Tensor:
    """The module's parameters as one flat vector ``[P]`` in layout order."""
    params = dict(module.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in layout.names])


def load_flat(module: torch.nn.Module, layout: Layout, flat: torch.Tensor) -> None:
    """Copy a flat vector ``[P]`` into the module's parameters (in place)."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in layout.unflatten(flat).items():
            params[name].copy_(value)

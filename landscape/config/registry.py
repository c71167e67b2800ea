"""A registry owned by another module, named in a declaration and looked up only when a value is checked."""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    """The names of a registry owned by another module, looked up only when a value is checked.

    ``Registry("landscape.engine.optim", "METHODS")`` behaves as the tuple of that dict's
    keys. The engines and the constrained methods are declared once, beside their
    code (``ensemble.ENGINES``, ``optim.METHODS``); reading them late keeps torch
    out of the start-up of commands that do not compute (``info``, ``plot``,
    ``merge``). ``tests/test_layout.py`` lists these two late lookups.
    """

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def entries(self) -> dict[str, Any]:
        return dict(getattr(importlib.import_module(self.module), self.name))

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries())

    def describe(self) -> str:
        """``name: what it is; ...`` from the entries (strings, or objects with a ``label``)."""
        return "; ".join(f"{k}: {v if isinstance(v, str) else getattr(v, 'label', '')}"
                         for k, v in self.entries().items())

    def __contains__(self, value) -> bool:
        return value in self.names()

    def __iter__(self):
        return iter(self.names())

"""Plain values for JSON, and one-line messages: how results and errors leave the program.

>>> plain({"a": float("nan"), "b": (1, 2)})
{'a': None, 'b': [1, 2]}
>>> one_line(ValueError("two\\n  lines"))
'two lines'
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np


def plain(obj: Any) -> Any:
    """JSON types only: dataclasses and dicts become dicts, sequences and arrays lists, NaN and infinities None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def to_json(obj: Any, **kwargs) -> str:
    """Canonical JSON of ``plain(obj)`` (keys sorted unless ``sort_keys=False``)."""
    kwargs.setdefault("sort_keys", True)
    return json.dumps(plain(obj), allow_nan=False, **kwargs)


def one_line(e: BaseException | str) -> str:
    """A message on one line (a user sees one line per error)."""
    return " ".join(str(e).split())

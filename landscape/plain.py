"""Plain values for JSON: how results leave the program (bad input leaves it through ``landscape.errors``).

>>> plain({"a": float("nan"), "b": (1, 2)})
{'a': None, 'b': [1, 2]}
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np


def plain(obj: Any, finite: bool = True) -> Any:
    """JSON types only: dataclasses and dicts become dicts, sequences and arrays lists, NaN and infinities None
    (kept as floats with ``finite=False``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name), finite) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v, finite) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [plain(v, finite) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) or not finite else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def to_json(obj: Any, finite: bool = True, **kwargs) -> str:
    """JSON of ``plain(obj)``, keys sorted unless ``sort_keys=False``; ``finite=False`` writes NaN as NaN."""
    kwargs.setdefault("sort_keys", True)
    return json.dumps(plain(obj, finite), allow_nan=not finite, **kwargs)



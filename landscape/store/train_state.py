"""Training state: where a group of trajectories stands, as the training loop and the store exchange it.

One row per member: parameters ``theta`` and AdamW's moments ``m``, ``v``
(``[M, P]``, torch tensors while training, numpy arrays in and out of the
file), the number of Adam updates ``adam_t`` and the ``step`` reached. The
store writes each member's row as a checkpoint and reads it back as a
one-row state; :meth:`TrainState.stack` joins such rows for a resumed group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


@dataclass
class TrainState:
    step: int
    theta: Any  # [M, P]
    m: Any  # [M, P] AdamW first moment
    v: Any  # [M, P] AdamW second moment
    adam_t: int  # Adam updates taken (bias correction)

    def numpy(self) -> "TrainState":
        """The same state with numpy arrays (for the store)."""
        return TrainState(self.step, _numpy(self.theta), _numpy(self.m), _numpy(self.v), self.adam_t)

    @staticmethod
    def stack(states: list["TrainState"]) -> "TrainState":
        """Join one-row numpy states that stand at the same step."""
        first = states[0]
        if any(s.step != first.step or s.adam_t != first.adam_t for s in states):
            raise ValueError("cannot stack training states at different steps")
        cat = lambda key: np.concatenate([getattr(s, key) for s in states])  # noqa: E731
        return TrainState(first.step, cat("theta"), cat("m"), cat("v"), first.adam_t)

"""The learning-rate schedule (``--warmup``, ``--schedule``): linear warm-up, then constant or cosine. Pure
functions of the step, read by the training loop and by the analysis's predictions."""

from __future__ import annotations

import math



def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine decay from ``base_lr`` at step 0 towards 0 at step ``total``."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))


# --schedule: the learning rate after the warm-up (the config's choices read this)
SCHEDULES = {
    "constant": "the peak learning rate throughout",
    "cosine": "cosine decay from the peak towards 0 at the last step",
}


def scheduled_lr(base_lr: float, step: int, total: int, warmup: int = 0, schedule: str = "constant") -> float:
    """The learning rate of step ``step`` (0-based) of ``total``: linear warm-up over ``warmup`` steps
    (``base_lr * step / warmup``: 0 at step 0, as ``LambdaLR(lambda s: min(s / warmup, 1))`` stepped after each
    update gives it, so the first update only fills Adam's moments), then ``schedule`` over the remaining steps."""
    if step < warmup:
        return base_lr * step / warmup
    if schedule == "cosine":
        return cosine_lr(base_lr, step - warmup, total - warmup)
    return base_lr

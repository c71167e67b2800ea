"""One trajectory of a training sweep: its own hyperparameters and its name in the file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One trajectory's own hyperparameters.

    ``train_frac``: the share of the task's training split the member trains on (its first
    ``train_count(n)`` examples; the split is a fixed shuffle, so smaller shares are nested in larger ones).
    ``named``: the axes besides weight decay, init scale and seed that the name shows (``lr``, ``frac``):
    those its sweep varies, so a sweep of one learning rate keeps the names files have always had.
    """

    weight_decay: float
    init_scale: float
    seed: int
    fix_norm: bool = False  # trained on the sphere of its initial norm
    lr: float = 0.001
    train_frac: float = 1.0
    named: tuple[str, ...] = ()
    group_lr: float | None = None  # the learning rate of the TrainConfig's parameter group (None: lr)
    group_weight_decay: float | None = None  # its weight decay (None: weight_decay)

    @property
    def name(self) -> str:
        """``[lrLR_][glrLR_]wd...[_gwdWD]_init...[_fracF]_seedS``; norm-constrained trajectories start with
        ``fixnorm_``."""
        lr = f"lr{self.lr:g}_" if "lr" in self.named else ""
        glr = f"glr{self.group_lr:g}_" if "glr" in self.named else ""
        gwd = f"_gwd{self.group_weight_decay:g}" if "gwd" in self.named else ""
        frac = f"_frac{self.train_frac:g}" if "frac" in self.named else ""
        return (f"{'fixnorm_' if self.fix_norm else ''}{lr}{glr}wd{self.weight_decay:g}{gwd}_init{self.init_scale:g}"
                f"{frac}_seed{self.seed}")

    def rates(self) -> tuple[float, float, float, float]:
        """``(lr, weight decay, group lr, group weight decay)``: the group's own where set, else the member's."""
        return (self.lr, self.weight_decay, self.lr if self.group_lr is None else self.group_lr,
                self.weight_decay if self.group_weight_decay is None else self.group_weight_decay)

    def train_count(self, n: int) -> int:
        """How many of the ``n`` training examples this member trains on (at least one)."""
        return n if self.train_frac >= 1 else max(1, int(round(self.train_frac * n)))

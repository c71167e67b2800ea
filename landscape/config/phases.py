"""``landscape phases``' settings: a training sweep (every ``TrainConfig`` field) whose members are the cells of a
grid over two hyperparameters (:data:`AXES`), and the thresholds that classify each run (:class:`PhaseRule`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .grid import parse_values
from .settings import STEPS_BOUND, STEPS_MAX, ConfigError, Rule, TrainConfig, setting



@dataclass
class PhasesConfig(TrainConfig):
    """Everything ``landscape phases`` needs: a training sweep whose members are the cells of a grid over two
    hyperparameters (``landscape.config.phases.AXES``), and the thresholds that classify each run."""

    x: str = setting("lr=1e-4:1e-2:11:log", Rule(str, "the first axis, NAME=SPEC with NAME one of lr, weight-decay, "
                                                      "init-scale, train-frac, group-lr, group-weight-decay and SPEC "
                                                      "as for --norms (0 allowed for the weight decays)",
                                                 metavar="NAME=SPEC"))
    y: str = setting("weight-decay=0:10:11", Rule(str, "the second axis, as --x", metavar="NAME=SPEC"))
    train_acc: float = setting(0.9, Rule(float, "t_train: the first logged step with train accuracy >= A",
                                         positive=True, metavar="A"))
    test_acc: float = setting(0.9, Rule(float, "t_test: the first logged step with test accuracy >= A",
                                        positive=True, metavar="A"))
    gap: int | None = setting(None, Rule(int, "grokking when t_test - t_train exceeds N steps, else comprehension "
                                              "(default 10%% of --steps, at most 1000)", minimum=0, optional=True,
                                         maximum=STEPS_MAX, bound=STEPS_BOUND, metavar="N"))
    train_loss: float | None = setting(None, Rule(float, "regression: t_train is the first step with train loss "
                                                         "<= L (default: the knee of a scan in the file)",
                                                  positive=True, optional=True, metavar="L"))
    test_loss: float | None = setting(None, Rule(float, "regression: t_test is the first step with test loss <= L "
                                                        "(default: the Goldilocks band of a scan in the file)",
                                                 positive=True, optional=True, metavar="L"))

    def check(self) -> None:
        """The grid's constraints (``config.validate`` calls it): two different, well-formed axes, not also given
        as their own flags; thresholds in (0, 1]."""
        x, y = self.axes()
        if x.name == y.name:
            raise ConfigError(f"--x and --y both vary {x.name}; choose two different axes")
        for a in (x, y):
            default = getattr(TrainConfig(), a.kind.field)
            if getattr(self, a.kind.field) != default:
                raise ConfigError(f"--{a.kind.field.replace('_', '-')} is given but {a.name} is an axis of the "
                                  "diagram; drop one of them")
        for a in (x, y):
            if a.kind.field.startswith("group_") and self.group is None:
                raise ConfigError(f"the {a.name} axis needs --group GLOB: the parameters whose rate it varies")
        for name in ("train_acc", "test_acc"):
            if getattr(self, name) > 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)!r}")

    def axes(self):
        """The two :class:`landscape.config.phases.Axis` of the grid (``ConfigError`` for a bad spec)."""
        return parse_axis(self.x, "--x"), parse_axis(self.y, "--y")

    def train_config(self) -> TrainConfig:
        """The sweep: the training settings with each axis's values as that hyperparameter's list."""
        x, y = self.axes()
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        values[x.kind.field], values[y.kind.field] = list(x.values), list(y.values)
        return TrainConfig(**values)

    def rule(self, steps: int | None = None) -> PhaseRule:
        """The classification's thresholds; the gap's default follows the step budget."""
        gap = self.gap if self.gap is not None else default_gap(steps or self.steps)
        return PhaseRule(gap, self.train_acc, self.test_acc, self.train_loss, self.test_loss)


def parse_axis(text: str, flag: str) -> Axis:
    """``NAME=SPEC`` (``lr=1e-4:1e-2:11:log``) as an :class:`Axis`; ``ConfigError`` with one line otherwise."""
    name, sep, spec = (part.strip() for part in text.partition("="))
    if not sep or not name:
        raise ConfigError(f"{flag} expects NAME=SPEC with NAME one of {', '.join(AXES)}, got {text!r}")
    if name not in AXES:
        raise ConfigError(f"{flag}: unknown axis {name!r}; choose from {', '.join(AXES)}")
    kind = AXES[name]
    try:
        values = parse_values(spec, name, zero=kind.zero)
    except ValueError as e:
        raise ConfigError(f"{flag} {e}") from None
    if kind.at_most_one and values.max() > 1:
        raise ConfigError(f"{flag} {name}: values must be in (0, 1], got {values.max():g}")
    return Axis(name, tuple(float(v) for v in values))


@dataclass(frozen=True)
class AxisKind:
    """A hyperparameter a phase diagram can vary: its training field, what it is, and the values it accepts."""

    field: str  # TrainConfig / Member field
    description: str
    zero: bool = False  # 0 is a valid value
    at_most_one: bool = False
    log: bool = True  # drawn on a log scale when every value is positive


AXES = {
    "lr": AxisKind("lr", "peak learning rate"),
    "weight-decay": AxisKind("weight_decay", "AdamW decoupled weight decay", zero=True),
    "init-scale": AxisKind("init_scale", "initialization scale (multiple of the default init)"),
    "train-frac": AxisKind("train_frac", "share of the training split trained on", at_most_one=True, log=False),
    "group-lr": AxisKind("group_lr", "peak learning rate of --group's parameters"),
    "group-weight-decay": AxisKind("group_weight_decay", "weight decay of --group's parameters", zero=True),
}


@dataclass(frozen=True)
class Axis:
    name: str  # as on the command line: lr, weight-decay, init-scale, train-frac
    values: tuple[float, ...]

    @property
    def kind(self) -> AxisKind:
        return AXES[self.name]

    @property
    def log(self) -> bool:
        """Drawn on a log scale: a positive axis spread over more than a factor 4."""
        return self.kind.log and min(self.values) > 0 and max(self.values) / min(self.values) > 4


@dataclass(frozen=True)
class PhaseRule:
    """The classification's thresholds (stored with the diagram)."""

    gap: int
    train_acc: float = 0.9
    test_acc: float = 0.9
    train_loss: float | None = None  # regression: absolute thresholds (else a scan in the file supplies them)
    test_loss: float | None = None


def default_gap(steps: int) -> int:
    """The comprehension/grokking gap when none is given: 10% of the budget, at most 1000 steps (Liu et al.'s
    1000 on their budget of 10^4, proportionally less on shorter runs).

    >>> default_gap(3000), default_gap(100000)
    (300, 1000)
    """
    return max(1, min(1000, steps // 10))

"""Run configurations: every field's default, type, range and help declared once, beside its dataclass.

A field is declared with :func:`setting`, which attaches a :class:`Rule` (what
the field accepts) to the dataclass field. The same rule checks a value from a
TOML preset (:func:`validate`) and converts a command-line flag (``Rule.parse``,
which the CLI uses as the argparse ``type``), so a range or a message is written
in one place. Every refusal is a :class:`ConfigError` with a one-line message.

>>> cfg = resolve(ScanConfig, flags={"steps": 50})
>>> cfg.steps, cfg.restarts
(50, 1)
>>> resolve(ScanConfig, flags={"restarts": 0})
Traceback (most recent call last):
    ...
landscape.config.settings.ConfigError: restarts must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import BadInput, one_line
from .member import Member
from .registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(BadInput):
    """A configuration value is not accepted; the message is one line for the user."""


_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _is(value, kind) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass(frozen=True)
class Rule:
    """What a field accepts: type, lower bound, choices, whether unset (None) is allowed, whether a list.

    ``minimum`` and ``maximum`` are inclusive (``bound`` says where the maximum comes from; an integer without one
    is bounded by int64, as the file stores it); ``positive`` means
    finite and > 0; ``nonnegative`` finite and >= 0. ``listed`` fields hold a non-empty list of ``kind`` (a lone
    value is read as a one-element list). ``execution`` fields change how a run
    is computed, never its results; ``per_member`` fields are a sweep's axes,
    stored with each trajectory rather than in the shared identity.
    """

    kind: type
    help: str = ""
    minimum: int | None = None
    maximum: int | None = None
    bound: str = ""  # why the maximum: what the format stores or the numerics count exactly
    positive: bool = False
    nonnegative: bool = False
    optional: bool = False
    choices: Any = None
    listed: bool = False
    execution: bool = False
    per_member: bool = False
    repeatable: bool = False  # the flag may be given more than once: a list of values (one given: the value)
    metavar: str | None = None  # the value's name in --help
    const: Any = None  # the value of the flag given without one (``--curvature`` alone), where it may be

    def check(self, name: str, value: Any) -> Any:
        """``value`` if accepted (lists normalized), else ``ConfigError`` naming ``name``."""
        if value is None and self.optional:
            return None
        if self.repeatable and isinstance(value, list) and value:
            checked = [self._one(name, v, f"{name} values must be") for v in value]
            return checked if len(checked) > 1 else checked[0]
        if not self.listed:
            return self._one(name, value, f"{name} must be")
        if _is(value, self.kind):
            value = [value]
        if not isinstance(value, list) or not value or not all(_is(v, self.kind) for v in value):
            noun = {int: "integers", str: "names"}.get(self.kind, "numbers")
            raise ConfigError(f"{name} must be a non-empty list of {noun}, got {value!r}")
        return [self._one(name, v, f"{name} values must be") for v in value]

    def _one(self, name: str, value: Any, must: str) -> Any:
        if not _is(value, self.kind):
            raise ConfigError(f"{must} {_NOUNS[self.kind]}, got {value!r}")
        if self.positive and not 0 < value < math.inf:
            raise ConfigError(f"{must} positive and finite, got {value!r}")
        if self.nonnegative and not 0 <= value < math.inf:
            raise ConfigError(f"{must} finite and non-negative, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{must} an integer >= {self.minimum}, got {value!r}")
        top, why = (self.maximum, self.bound) if self.maximum is not None else (SEED_MAX, INT64) \
            if self.kind is int else (None, "")
        if top is not None and value > top:
            raise ConfigError(f"{must} at most {top} ({why}), got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{must} one of {', '.join(self.choices)}, got {value!r}")
        return float(value) if self.kind is float else value  # 1 from Python or TOML is 1.0, as the flag reads it

    def parse(self, flag: str) -> Callable[[str], Any]:
        """An argparse ``type``: text to value, checked by this rule with messages naming ``flag``."""
        import argparse

        def convert(text: str):
            try:
                if self.listed:  # every listed option, names included: A,B,C
                    value = [self.kind(v.strip()) for v in text.split(",") if v.strip()]
                elif self.kind is str:
                    value = text
                else:
                    value = self.kind(text)
            except ValueError:
                what = "numbers separated by commas" if self.listed else _NOUNS[self.kind]
                if self.listed and self.kind is int:
                    what = "integers separated by commas"
                raise argparse.ArgumentTypeError(f"{flag} expects {what}, got {text!r}") from None
            try:
                return self.check(flag, value)
            except ConfigError as e:
                raise argparse.ArgumentTypeError(str(e)) from None

        return convert


def setting(default: Any, rule: Rule) -> Any:
    """A dataclass field with its default and its :class:`Rule`."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rule": rule})
    return field(default=default, metadata={"rule": rule})


# Bounds of counts, from what the format stores and the numerics count exactly; what a run holds in memory is
# bounded against the machine when the task is known (``landscape.engine.footprint``).
STEPS_MAX = 2 ** 53
STEPS_BOUND = "float64, which schedules and step grids count in, is exact up to 2^53"
SEED_MAX = 2 ** 63 - 1
SEED_BOUND = "seeds are stored as int64"
INT64 = "every integer setting is stored as int64"  # the bound of an integer whose rule names none


def counted(help: str, minimum: int = 1, **kw) -> Rule:
    """The rule of a count of steps: an integer between ``minimum`` and 2^53."""
    return Rule(int, help, minimum=minimum, maximum=STEPS_MAX, bound=STEPS_BOUND, metavar="N", **kw)


ENGINES = Registry("landscape.engine.ensemble", "ENGINES")
BRANCHES = ("independent", "down", "up", "both")  # landscape scan --branch
METHODS = Registry("landscape.engine.optim", "METHODS")
SCHEDULES = Registry("landscape.config.schedule", "SCHEDULES")
DEVICE = "cpu, cuda or cuda:N"
THREADS = "CPU threads for torch (default: SLURM_CPUS_PER_TASK or OMP_NUM_THREADS when set, else torch's own)"
COMPILE = ("auto", "on", "off")  # --compile, landscape.engine.fused.MODES
COMPILE_HELP = ("compile the step with torch.compile (with the gradient on the mlp engine): auto (when it works "
                "here and is expected to save 20 s or more), on, off")


@dataclass
class ScanConfig:
    """Everything ``landscape scan`` needs."""

    task: str = setting("teacher-student", Rule(str, "built-in task or package.module:function", metavar="NAME"))
    task_options: dict[str, Any] = field(default_factory=dict)
    norms: str | list[str] = setting("0.1:10:17:log", Rule(
        str, "START:STOP[:NUM[:log]] or A,B,C (NUM 11); given twice as GLOB=SPEC, a two-norm grid on the product "
             "of two spheres (each constrained parameter in the first group whose glob matches it)",
        repeatable=True, metavar="SPEC"))
    absolute: bool = setting(False, Rule(bool, "norms are raw L2 norms instead of multiples alpha of the "
                                               "default-init norm w0"))
    restarts: int = setting(1, Rule(int, "initializations per norm", minimum=1, metavar="R"))
    steps: int = setting(1000, counted("optimizer steps per point"))
    lr: float = setting(0.01, Rule(float, "peak learning rate, cosine-decayed", positive=True, metavar="LR"))
    batch_size: int | None = setting(None, Rule(int, "minibatch size (default: full batch)", minimum=1,
                                                optional=True, metavar="B"))
    seed: int = setting(0, Rule(int, "seed for initializations and minibatches", minimum=0, maximum=SEED_MAX,
                                       bound=SEED_BOUND, metavar="S"))
    method: str = setting("riemannian", Rule(str, "constrained method", choices=METHODS))
    constrain: str = setting("*", Rule(str, "parameters whose joint norm is constrained (globs, comma-separated)",
                                       metavar="GLOB"))
    branch: str = setting("independent", Rule(str, "independent: every point starts from its restart's "
                                              "initialization; down / up: a continuation branch visiting the norms "
                                              "from the largest / smallest, each point warm-started from the "
                                              "previous minimizer rescaled; both: the two branches together",
                                              choices=BRANCHES))
    from_trajectory: str | None = setting(None, Rule(str, "with --branch down or both: start the down branch at "
                                                          "the largest norm from this stored trajectory's last "
                                                          "checkpoint (a memorizing solution) instead of the "
                                                          "restarts' initializations", optional=True,
                                                     metavar="NAME"))
    history: int = setting(0, counted("also record train and test loss every N steps", 0))
    save_params: bool = setting(False, Rule(bool, "store the constrained minimizers"))
    curvature: int = setting(0, Rule(int, "at every minimizer, the K largest eigenvalues of the Riemannian Hessian "
                                          "of the training loss, its smallest Ritz value (negative: negative "
                                          "curvature) and its trace (--curvature alone: K = 5; 0: none)", minimum=0,
                                     metavar="K", const=5))
    curvature_samples: int | None = setting(None, Rule(int, "Hutchinson probes of the trace with --curvature "
                                                            "(default 10)", minimum=1, optional=True, metavar="S"))
    lanczos: int | None = setting(None, Rule(int, "Lanczos iterations with --curvature (default max(30, 3K); at "
                                                  "most the tangent space's dimension)", minimum=1, optional=True,
                                             metavar="N"))
    chunk: int | None = setting(None, Rule(int, "points per batched computation (default: from memory)",
                                           minimum=1, optional=True, execution=True, metavar="C"))
    engine: str = setting("auto", Rule(str, "how the batch is computed", choices=ENGINES, execution=True))
    compile: str = setting("auto", Rule(str, COMPILE_HELP, choices=COMPILE, execution=True, metavar="auto|on|off"))
    device: str = setting("cpu", Rule(str, DEVICE, execution=True, metavar="DEVICE"))
    threads: int | None = setting(None, Rule(int, THREADS, minimum=1, optional=True, execution=True, metavar="N"))

    def identity(self) -> dict[str, Any]:
        """The fields that define the experiment (a file holds one identity)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in execution_fields(type(self))}


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


@dataclass
class TrainConfig:
    """Everything ``landscape train`` needs: one trajectory per (lr, weight decay, init scale, train fraction,
    seed)."""

    task: str = setting("teacher-student", Rule(str, "built-in task or package.module:function", metavar="NAME"))
    task_options: dict[str, Any] = field(default_factory=dict)
    init_scale: list[float] = setting([1.0], Rule(float, "multiply the default initialization by alpha",
                                                  positive=True, listed=True, per_member=True, metavar="A[,A...]"))
    weight_decay: list[float] = setting([0.0], Rule(float, "AdamW decoupled weight decay", nonnegative=True,
                                                    listed=True, per_member=True, metavar="WD[,WD...]"))
    seeds: list[int] = setting([0], Rule(int, "initialization and minibatch seeds", minimum=0, maximum=SEED_MAX,
                                         bound=SEED_BOUND, listed=True, per_member=True, metavar="S[,S...]"))
    torch_seed: bool = setting(False, Rule(bool, "build each model right after torch.manual_seed(seed), as research "
                                                 "code does (default: from a seed derived from it)"))
    lr: list[float] = setting([0.001], Rule(float, "peak learning rate (see --warmup, --schedule)", positive=True,
                                            listed=True, per_member=True, metavar="LR[,LR...]"))
    train_frac: list[float] = setting([1.0], Rule(float, "share of the task's training split each trajectory trains "
                                                        "on, in (0, 1] (its first examples; the test split is "
                                                        "shared)", positive=True, listed=True, per_member=True,
                                                  metavar="F[,F...]"))
    group: str | None = setting(None, Rule(str, "a parameter group (globs, comma-separated, as --constrain) trained "
                                                "with its own --group-lr and --group-weight-decay, e.g. Liu et al.'s "
                                                "representation and decoder learning rates", optional=True,
                                           metavar="GLOB"))
    group_lr: list[float] | None = setting(None, Rule(float, "peak learning rate of --group's parameters (default: "
                                                             "--lr)", positive=True, listed=True, optional=True,
                                                      per_member=True, metavar="LR[,LR...]"))
    group_weight_decay: list[float] | None = setting(None, Rule(float, "weight decay of --group's parameters "
                                                                       "(default: --weight-decay)",
                                                                nonnegative=True, listed=True, optional=True,
                                                                per_member=True, metavar="WD[,WD...]"))
    betas: list[float] = setting([0.9, 0.999], Rule(float, "Adam's beta1,beta2, each in [0, 1)", nonnegative=True,
                                                    listed=True, metavar="B1,B2"))
    warmup: int = setting(0, counted("steps of linear learning-rate warm-up from 0", 0))
    schedule: str = setting("constant", Rule(str, "learning rate after the warm-up", choices=SCHEDULES))
    fix_norm: bool = setting(False, Rule(bool, "train on the sphere of each member's initial norm of the "
                                               "constrained parameters (Riemannian AdamW; weight decay acts "
                                               "on the other parameters only)"))
    steps: int = setting(10000, counted("training steps"))
    batch_size: int | None = setting(None, Rule(int, "minibatch size (default: full batch)", minimum=1,
                                                optional=True, metavar="B"))
    constrain: str = setting("*", Rule(str, "parameter set whose norm is logged as constrained_norm (and held "
                                            "fixed with --fix-norm)", metavar="GLOB"))
    log_every: int = setting(0, counted("log every N steps (0: a log-spaced grid)", 0))
    log_points: int = setting(100, Rule(int, "points of the log-spaced grid", minimum=1, metavar="N"))
    metrics: list[str] | None = setting(None, Rule(str, "metrics to log (default: the task's default set; "
                                                        "`landscape metrics` lists them)", listed=True,
                                                   optional=True, execution=True, metavar="NAME[,NAME...]"))
    checkpoint_every: int = setting(1000, counted("write logs and a resumable checkpoint every N steps",
                                                       execution=True))
    chunk: int | None = setting(None, Rule(int, "trajectories per batched computation", minimum=1,
                                           optional=True, execution=True, metavar="C"))
    engine: str = setting("auto", Rule(str, "how the batch is computed", choices=ENGINES, execution=True))
    compile: str = setting("auto", Rule(str, COMPILE_HELP, choices=COMPILE, execution=True, metavar="auto|on|off"))
    device: str = setting("cpu", Rule(str, DEVICE, execution=True, metavar="DEVICE"))
    threads: int | None = setting(None, Rule(int, THREADS, minimum=1, optional=True, execution=True, metavar="N"))

    def identity(self) -> dict[str, Any]:
        """Settings shared by every trajectory of the sweep (per-member values are stored apart)."""
        d = dataclasses.asdict(self)
        skip = {*execution_fields(type(self)), *per_member_fields(type(self)), "task_options"}
        return {k: v for k, v in d.items() if k not in skip}

    def members(self) -> list[Member]:
        """The sweep: every (lr, group lr, weight decay, group weight decay, init scale, train fraction, seed)
        combination, in that order."""
        lrs, fracs = _listed(self.lr), _listed(self.train_frac)
        glrs, gwds = _listed(self.group_lr), _listed(self.group_weight_decay)
        named = tuple(k for k, values in (("lr", lrs), ("glr", glrs), ("gwd", gwds), ("frac", fracs))
                      if len(values) > 1)
        return [Member(float(wd), float(a), int(s), bool(self.fix_norm), float(lr), float(f), named,
                       None if glr is None else float(glr), None if gwd is None else float(gwd))
                for lr, glr, wd, gwd, a, f, s in itertools.product(lrs, glrs, _listed(self.weight_decay), gwds,
                                                                   _listed(self.init_scale), fracs,
                                                                   _listed(self.seeds))]


def field_names(cls=ScanConfig) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def rule(cls, name: str) -> Rule:
    """The declared rule of field ``name`` of ``cls``."""
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["rule"]


def default(cls, name: str) -> Any:
    return getattr(cls(), name)


def execution_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if "rule" in f.metadata and f.metadata["rule"].execution)


def per_member_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if "rule" in f.metadata and f.metadata["rule"].per_member)


def load_toml(path: str | Path, cls=ScanConfig) -> dict[str, Any]:
    """Read a preset: top-level keys are config fields, ``[task_options]`` the task's options."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {str(path)!r}: {one_line(e)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a text (TOML) file; pass a preset such as "
                          "data/teacher-student.toml") from None
    allowed = set(field_names(cls))
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"config file {str(path)!r}: unknown keys {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(allowed))}")
    return data


def resolve(cls, preset: str | Path | None = None, flags: dict[str, Any] | None = None,
            task_options: list[tuple[str, str]] | None = None):
    """Defaults < TOML preset < flags given on the command line; the result is validated."""
    values = load_toml(preset, cls) if preset else {}
    values.update({k: v for k, v in (flags or {}).items() if v is not None and k != "task_options"})
    options = values.pop("task_options", {})
    if not isinstance(options, dict):
        raise ConfigError("config: [task_options] must be a table")
    options = {**options, **dict(task_options or [])}
    return validate(cls(**values, task_options=options))


def validate(cfg):
    """Check every field against its rule and the cross-field constraints; returns ``cfg`` (normalized)."""
    for f in dataclasses.fields(cfg):
        if "rule" in f.metadata:
            setattr(cfg, f.name, f.metadata["rule"].check(f.name, getattr(cfg, f.name)))
    check_device(cfg.device)
    if hasattr(cfg, "check"):  # a config's own cross-field constraints, declared beside it
        cfg.check()
    if isinstance(cfg, TrainConfig):
        if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
            raise ConfigError(f"betas must be two numbers B1,B2 in [0, 1), got {cfg.betas!r}")
        if cfg.warmup > cfg.steps:
            raise ConfigError(f"warmup must be at most steps ({cfg.steps}), got {cfg.warmup}")
        if cfg.group is None and (cfg.group_lr is not None or cfg.group_weight_decay is not None):
            raise ConfigError("--group-lr and --group-weight-decay need --group GLOB: the parameters they apply to")
        if cfg.group is not None and cfg.fix_norm:
            raise ConfigError("--group with --fix-norm: per-group rates are for free training; drop one of them")
        if any(f > 1 for f in cfg.train_frac):
            raise ConfigError(f"train_frac values must be in (0, 1], got {cfg.train_frac!r}")
        names = [m.name for m in cfg.members()]
        if len(set(names)) != len(names):
            raise ConfigError("the sweep lists the same (lr, group lr, weight decay, group weight decay, init scale, "
                              "train fraction, seed) twice")
    if isinstance(cfg, ScanConfig):
        from .grid import norm_groups

        try:
            groups = norm_groups(cfg.norms)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if groups is None and isinstance(cfg.norms, list):
            cfg.norms = cfg.norms[-1]  # a plain --norms given twice: the last wins
        if not cfg.curvature and (cfg.curvature_samples is not None or cfg.lanczos is not None):
            raise ConfigError("--curvature-samples and --lanczos set up --curvature K, which is not given")
        if cfg.curvature and cfg.lanczos is not None and cfg.lanczos < cfg.curvature:
            raise ConfigError(f"--lanczos {cfg.lanczos} is fewer iterations than --curvature {cfg.curvature} "
                              "eigenvalues; give at least K")
        if cfg.curvature and cfg.curvature_samples is None:
            cfg.curvature_samples = 10
        if groups and cfg.branch != "independent":
            raise ConfigError(f"--branch {cfg.branch}: continuation branches follow one norm; a two-norm grid "
                              "(--norms GLOB=SPEC twice) is scanned independently")
    return cfg


def check_device(device: str) -> None:
    """``device`` is cpu, cuda or cuda:N, and available here."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda or cuda:N")

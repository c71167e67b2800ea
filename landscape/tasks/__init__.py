"""Built-in problems and the contract for your own.

A task is a :class:`Task`: a model constructor, train and test data, a loss and,
for classification, an accuracy. ``get_task(name, options)`` builds one from the
registry (``landscape tasks`` lists it) or from ``package.module:function``, any
importable factory that accepts the options as keyword arguments and returns a
``Task``. Example of a user factory::

    # mytask.py
    import torch
    from landscape.tasks import Task, mse

    def make(seed: int = 0, n: int = 64):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2 * n, 3, generator=g)
        y = x.sum(1, keepdim=True).sin()
        model = lambda: torch.nn.Sequential(
            torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        return Task("mytask", model, x[:n], y[:n], x[n:], y[n:], loss=mse)

and ``landscape scan --task mytask:make --task-opt n=128``. Every task also
takes ``probe_layer=NAME``: the module whose input ``probe_r2`` reads (default:
the last ``nn.Linear``).

What the model must accept and return, and what ``structure`` declares for the
order parameters, is :mod:`landscape.tasks.contract`; inputs that are not one
tensor (dicts or tuples of tensors) are :mod:`landscape.tasks.inputs`.

May import: ``landscape.errors`` and this folder; tasks know nothing of what runs them.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..errors import BadInput, user_frame


class TaskError(BadInput):
    """A task could not be built from the given name or options."""


@dataclass
class Task:
    """One learning problem.

    ``model()`` returns a freshly initialized ``torch.nn.Module`` using torch's
    global random generator (the scan seeds it); it is called as ``model(x)``.
    ``x_train``/``x_test`` are tensors, or dicts or tuples of tensors, whose
    first axis indexes the examples; ``y_train``/``y_test`` are tensors.
    ``loss(output, target)`` and ``accuracy(output, target)`` return scalars
    and must be written with torch operations only (they run under
    ``torch.func.vmap``). ``output`` turns what the model returns into the
    tensor they read (e.g. ``lambda out: out[0]`` for ``(logits, hidden)``);
    ``structure`` declares what the order parameters read
    (:mod:`landscape.tasks.contract`).
    """

    name: str
    model: Callable[[], torch.nn.Module]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    structure: dict[str, Any] = field(default_factory=dict)  # what the order parameters read (tasks.contract)
    output: Callable[[Any], torch.Tensor] | None = None  # the model's output -> the tensor the loss reads

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    @property
    def classification(self) -> bool:
        """Whether the task has an accuracy (and its accuracies are recorded)."""
        return self.accuracy is not None

    def member_loss(self, output: torch.Tensor, target: torch.Tensor, keep: torch.Tensor | None = None):
        """One member's loss; with ``keep [N]``, the mean over the examples where it is 1 (:func:`masked`)."""
        return self.loss(output, target) if keep is None else masked(self.loss)(output, target, keep)

    def member_metrics(self, output: torch.Tensor, target: torch.Tensor, keep: torch.Tensor | None = None):
        """One member's ``(loss, accuracy)`` (accuracy 0 for a regression), ``keep`` as for :meth:`member_loss`."""
        if not self.classification:
            acc = torch.zeros(())
        else:
            acc = self.accuracy(output, target) if keep is None else masked(self.accuracy)(output, target, keep)
        return self.member_loss(output, target, keep), acc


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, averaged over samples and output dimensions."""
    return ((output - target) ** 2).mean()


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


def label_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose arg-max output equals the integer label."""
    return (output.argmax(-1) == target).float().mean()


def onehot_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose arg-max output equals the arg-max of a one-hot target."""
    return (output.argmax(-1) == target.argmax(-1)).float().mean()


def masked(fn):
    """``fn(output, target)``, a mean over examples, as the mean over the examples where ``keep [N]`` is 1:
    ``(output, target, keep) -> scalar``. Each example is evaluated alone (``vmap`` over examples), so any task
    loss or accuracy qualifies; a member training on part of the shared data reads its own part this way."""
    each = vmap(lambda o, t: fn(o.unsqueeze(0), t.unsqueeze(0)))
    return lambda out, y, keep: (each(out, y) * keep).sum() / keep.sum()


def mlp(sizes, activation: str = "relu") -> torch.nn.Sequential:
    """A multilayer perceptron with PyTorch's default initialization."""
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU}
    if activation not in acts:
        raise TaskError(f"unknown activation {activation!r}; choose from {', '.join(acts)}")
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(acts[activation]())
    return torch.nn.Sequential(*layers)


def _registry() -> dict[str, Callable[..., Task]]:
    from . import addition, digits, file, modular, teacher_student

    return {
        "teacher-student": teacher_student.make,
        "modular": modular.make,
        "addition": addition.make,
        "digits": digits.make,
        "file": file.make,
    }


def describe() -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every built-in task."""
    return [(name, inspect.getdoc(f).splitlines()[0]) for name, f in _registry().items()]


def _kind(param: inspect.Parameter) -> type | None:
    """The type a string option is converted to: the default's, else the annotation's (``int | None``)."""
    default = param.default
    if default is not inspect.Parameter.empty and default is not None:
        return type(default)
    annotation = param.annotation
    kinds = typing.get_args(annotation) or (annotation,)
    return next((k for k in (bool, int, float, str) if k in kinds), None)


def _coerce(name: str, value: Any, kind: type | None) -> Any:
    if not isinstance(value, str) or kind in (str, None):
        return value
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise TaskError(f"task option {name}={value!r}: expected {kind.__name__}") from None
    return value


def _signature(factory: Callable) -> inspect.Signature:
    try:
        return inspect.signature(factory, eval_str=True)
    except Exception:  # noqa: BLE001 -- annotations that do not evaluate: use the defaults' types only
        return inspect.signature(factory)


def resolve_factory(name: str) -> Callable[..., Task]:
    """The factory for a registry name or for ``package.module:function``."""
    registry = _registry()
    if name in registry:
        return registry[name]
    if ":" not in name:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(registry)} (or package.module:function)")
    module_name, _, func_name = name.partition(":")
    if not module_name or not func_name:
        raise TaskError(f"task {name!r}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 -- any import failure is the user's input
        raise TaskError(f"task {name!r}: cannot import module {module_name!r} ({type(e).__name__}: {e})") from e
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise TaskError(f"task {name!r}: module {module_name!r} has no function {func_name!r}")
    return factory


def _check_data(name: str, task: Task) -> None:
    from . import inputs

    for split in ("train", "test"):
        x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
        if not isinstance(y, torch.Tensor) or y.dim() == 0:
            raise TaskError(f"task {name!r}: y_{split} must be a torch tensor with one row per example")
        if len(y) == 0:
            raise TaskError(f"task {name!r}: the {split} set is empty")
        why = inputs.check(x, f"x_{split}", len(y))
        if why is not None:
            raise TaskError(f"task {name!r}: {why} (y_{split} has {len(y)} rows)")
        for label, t in ((f"y_{split}", y), (f"x_{split}", x)):
            why = _values(t) if isinstance(t, torch.Tensor) else None
            if why:
                raise TaskError(f"task {name!r}: {label} {why}")
    if task.output is not None and not callable(task.output):
        raise TaskError(f"task {name!r}: Task.output must be a function of the model's output")


def _values(t: torch.Tensor) -> str | None:
    """Why a data tensor cannot be trained on (real floating point or integer, finite), or None."""
    if t.is_complex() or t.dtype == torch.bool:
        return f"is {str(t.dtype).removeprefix('torch.')}; landscape trains on real floating-point or integer data"
    if t.is_floating_point() and not torch.isfinite(t).all():
        return f"holds NaN or infinite values ({int((~torch.isfinite(t)).sum())} of {t.numel()})"
    return None


_HELD: dict[str, Task] = {}  # Task objects handed to the Python API, by name, while its call runs


@contextlib.contextmanager
def holding(task: Task):
    """Make the ``Task`` object ``task`` (made in a notebook) what its name resolves to while the block runs: the
    API's ``task=`` a Task. The file records its name, options and data fingerprint as for any task."""
    if not isinstance(task, Task):
        raise TaskError(f"task: expected a landscape.tasks.Task, got {type(task).__name__}")
    if not isinstance(task.name, str) or not task.name.strip():
        raise TaskError("task: a Task object needs a name (Task(name=..., ...)): the file records it")
    _check_data(task.name, task)
    before = _HELD.get(task.name)
    _HELD[task.name] = task
    try:
        yield task
    finally:
        if before is None:
            _HELD.pop(task.name, None)
        else:
            _HELD[task.name] = before


def get_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """Build the task ``name`` with keyword ``options`` (strings are converted to the defaults' types)."""
    if name in _HELD:  # a Task object given to the API: used as it is
        extra = {k: v for k, v in (options or {}).items() if _HELD[name].options.get(k, v) != v}
        if extra:
            raise TaskError(f"task {name!r}: a Task object takes no task options, got {extra}")
        return _HELD[name]
    factory = resolve_factory(name)
    options = dict(options or {})
    probe = options.pop("probe_layer", None)  # every task's option: the layer whose input probe_r2 reads
    params = _signature(factory).parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    resolved = {}
    for key, value in options.items():
        if key not in params and not takes_kwargs:
            accepted = ", ".join(k for k, v in params.items() if v.kind != v.VAR_POSITIONAL) or "none"
            raise TaskError(f"task {name!r} has no option {key!r}; accepted: {accepted}")
        resolved[key] = _coerce(key, value, _kind(params[key]) if key in params else None)
    try:
        task = factory(**resolved)
    except TaskError:
        raise
    except Exception as e:  # noqa: BLE001 -- the factory is user input; report, don't trace back
        raise TaskError(f"task {name!r} with options {resolved}: {type(e).__name__}: {e}{user_frame(e)}") from e
    if not isinstance(task, Task):
        raise TaskError(f"task {name!r}: factory returned {type(task).__name__}, expected landscape.tasks.Task")
    _check_data(name, task)
    # Record every option with its effective value, defaults included.
    full = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(resolved)
    task.options = {**full, **task.options}
    task.name = name
    if probe is not None:
        _set_probe_layer(name, task, str(probe))
    return task


def _set_probe_layer(name: str, task: Task, layer: str) -> None:
    with torch.random.fork_rng(devices=[]):
        modules = [n for n, _ in task.model().named_modules() if n]
    if layer not in modules:
        raise TaskError(f"task {name!r}: task option probe_layer={layer!r}: the model has no such module; "
                        f"modules: {', '.join(modules)}")
    task.structure = {**task.structure, "probe_layer": layer}
    task.options["probe_layer"] = layer

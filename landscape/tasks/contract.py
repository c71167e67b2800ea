"""What the tool needs of a task's model, checked once, on two training examples, before any step runs.

The model is called as ``model(x)`` with the inputs alone (a tensor, or a dict or tuple of tensors:
``landscape.tasks.inputs``); ``Task.output`` (default none) turns what it returns into the one tensor the loss
reads, e.g. ``output=lambda out: out[0]`` for a model that returns ``(logits, hidden)``. The output's first axis
indexes the examples. The order parameters read what ``Task.structure`` declares (every key optional):

``modulus``, ``op``, ``modular``
    p and the operation (``+ - * /``) of an arithmetic task on the numbers 0..p-1: the embedding metrics need p,
    RQI, the progress measures and the effective theory addition. ``modular`` (default True): the result is taken
    mod p; False for integer addition (Liu et al.'s toy task), where the Fourier metrics do not apply.
``embedding``, ``embedding_axis``
    the parameter that holds the token embeddings and its axis that indexes tokens (entries 0..p-1 are the
    numbers). Without the axis, the one axis long enough for p tokens; a parameter with two such axes (a square
    ``[d_model, vocab]``) needs it declared.
``logits``
    ``[N, classes]`` logits from the (adapted) output, for the progress measures; default the output itself.
    Nanda's transformer returns ``[N, positions, vocab]``: ``logits=lambda out: out[:, -1]``.
``operands``
    ``(a, b)``, each ``[N]``, from the inputs, for the progress measures; default ``x[:, 0], x[:, 1]``.
``probe_layer``, ``probe_at``, ``probe_map``
    the module (any, by name) whose ``"input"`` (default) or ``"output"`` ``probe_r2`` reads, and a function of
    what it sees to ``[N, features]`` (default: flatten all but the first axis). Default module: the last
    ``nn.Linear``.

A declared key that does not fit the model is a ``TaskError`` naming the key and the shapes; a default metric
whose needs are not declared is skipped and listed with the reason (``landscape.metrics.skipped``).
"""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import inputs
from ..errors import one_line, user_frame

KEYS = ("modulus", "op", "modular", "embedding", "embedding_axis", "logits", "operands", "probe_layer", "probe_at",
        "probe_map")
ROWS = 2  # training examples the model is tried on
_SAMPLES: dict[int, tuple[Any, "Sample"]] = {}  # id(task) -> (weak reference to the task, its sample)


def _error(task, message: str):
    from . import TaskError

    return TaskError(f"task {task.name!r}: {message}")


@dataclass(frozen=True)
class Probe:
    """Where ``probe_r2`` reads a representation: module ``layer``'s ``at`` (input or output), mapped to
    ``[N, features]`` by ``map``."""

    layer: str
    at: str = "input"
    map: Callable[[torch.Tensor], torch.Tensor] | None = None

    def read(self, seen: torch.Tensor, rows: int) -> torch.Tensor:
        h = self.map(seen) if self.map is not None else seen
        return h.reshape(rows, -1)


def probe_of(module: torch.nn.Module, structure: dict) -> Probe | None:
    """The probe the task declares, else the input of the model's last ``nn.Linear``; None when neither."""
    if "probe_layer" in structure:
        return Probe(structure["probe_layer"], structure.get("probe_at", "input"), structure.get("probe_map"))
    linear = [name for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    return Probe(linear[-1], "input", structure.get("probe_map")) if linear else None


def hook(module: torch.nn.Module, probe: Probe, seen: list):
    """A forward hook on the probe's module that appends what it reads to ``seen``; ``.remove()`` it after."""
    target = module.get_submodule(probe.layer)
    if probe.at == "output":
        return target.register_forward_hook(lambda mod, args, out: seen.append(out))
    return target.register_forward_pre_hook(lambda mod, args: seen.append(args[0] if args else None))


def adapted(task, out: Any) -> Any:
    """The model's output as the loss reads it (``Task.output`` applied)."""
    return out if task.output is None else task.output(out)


@dataclass
class Sample:
    """The model run on the first ``ROWS`` training examples: its inputs, (adapted) output and targets."""

    module: torch.nn.Module
    x: Any
    y: torch.Tensor
    out: torch.Tensor


def train_mode_modules(module: torch.nn.Module) -> list[str]:
    """The modules whose output is random or depends on the batch in training mode: dropout with p > 0
    (an RNN's between-layer dropout too), batch normalization."""
    found = []
    for name, m in module.named_modules():
        rate = m.p if isinstance(m, torch.nn.modules.dropout._DropoutNd) else \
            m.dropout if isinstance(m, torch.nn.RNNBase) and m.num_layers > 1 else 0
        if rate:
            found.append(f"{type(m).__name__} {name!r} with p={rate:g}")
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            found.append(f"{type(m).__name__} {name!r}")
    return found


def _required(module: torch.nn.Module) -> list[str] | None:
    """The arguments ``forward`` cannot do without (no default), or None when its signature does not say."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.default is p.empty and p.kind != p.VAR_KEYWORD]


def sample(task, module: torch.nn.Module | None = None) -> Sample:
    """Check the call contract (module docstring) on ``ROWS`` training examples; ``TaskError`` in one line."""
    key = id(task)
    if key in _SAMPLES and _SAMPLES[key][0]() is task and module is None:
        return _SAMPLES[key][1]
    if module is None:
        with torch.random.fork_rng(devices=[]):
            module = task.model()
    if not isinstance(module, torch.nn.Module):
        raise _error(task, f"model() returned {type(module).__name__}, expected a torch.nn.Module")
    stochastic = train_mode_modules(module)
    if stochastic:
        raise _error(task, f"the model has modules that act differently in training and evaluation "
                     f"({', '.join(stochastic)}): landscape's losses, gradients and order parameters are functions "
                     "of the parameters alone; use dropout p=0, and LayerNorm or GroupNorm for BatchNorm")
    required = _required(module)
    if required is not None and len(required) != 1:
        needs = f"forward({', '.join(required)})" if required else "forward() with no argument"
        raise _error(task, f"the model's {needs} cannot be called as model(x): landscape passes the inputs as one "
                     "argument; give the other arguments defaults, or make x a dict or tuple of tensors that "
                     "forward unpacks")
    x, y = inputs.take(task.x_train, slice(0, ROWS)), task.y_train[:ROWS]
    rows = len(y)
    try:
        with torch.no_grad():
            raw = module(x)
    except Exception as e:  # noqa: BLE001 -- the model is user code
        raise _error(task, f"the model fails on {rows} training examples (x {inputs.describe(x)}): "
                     f"{type(e).__name__}: {one_line(e)}{user_frame(e)}") from e
    try:
        out = adapted(task, raw)
    except Exception as e:  # noqa: BLE001
        raise _error(task, f"Task.output fails on the model's output {inputs.describe(raw)}: "
                     f"{type(e).__name__}: {one_line(e)}{user_frame(e)}") from e
    if not isinstance(out, torch.Tensor):
        hint = ("declare Task(output=...) that picks the tensor the loss reads, e.g. output=lambda out: out[0]"
                if task.output is None else "Task.output must return one tensor")
        raise _error(task, f"the model returns {inputs.describe(out)}, not one tensor: {hint}")
    if out.dim() == 0 or out.shape[0] != rows:
        raise _error(task, f"the model's output has shape {list(out.shape)} for {rows} examples: its first axis "
                     "must index the examples")
    for what, fn in (("loss", task.loss), ("accuracy", task.accuracy)):
        if fn is None:
            continue
        try:
            value = fn(out, y)
        except Exception as e:  # noqa: BLE001
            raise _error(task, f"the task's {what} cannot read the model's output {list(out.shape)} with targets "
                         f"{list(y.shape)}: {type(e).__name__}: {one_line(e)}{user_frame(e)}") from e
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise _error(task, f"the task's {what} returns {inputs.describe(value)} on output {list(out.shape)}, "
                         "expected a scalar tensor")
    found = Sample(module, x, y, out)
    check_structure(task, found)
    _SAMPLES[key] = (weakref.ref(task, lambda _, key=key: _SAMPLES.pop(key, None)), found)
    return found


def embedding_axis(task, shape: tuple[int, ...]) -> int:
    """The token axis of the embedding parameter of ``shape`` (declared, else the one long enough for p)."""
    s, p = task.structure, task.structure["modulus"]
    name = s["embedding"]
    if "embedding_axis" in s:
        axis = s["embedding_axis"]
        if not isinstance(axis, int) or isinstance(axis, bool) or not -len(shape) <= axis < len(shape):
            raise _error(task, f"structure['embedding_axis']={axis!r} is not an axis of {name!r}, shape "
                         f"{list(shape)}")
        axis %= len(shape)
        if shape[axis] < p:
            raise _error(task, f"structure['embedding_axis']={axis}: {name!r} has shape {list(shape)}, "
                         f"{shape[axis]} entries on that axis, fewer than the modulus {p} tokens")
        return axis
    long = [a for a, n in enumerate(shape) if n >= p]
    if len(long) != 1:
        why = "no axis holds" if not long else f"axes {', '.join(map(str, long))} could each hold"
        raise _error(task, f"structure['embedding']={name!r} has shape {list(shape)}: {why} the modulus {p} "
                     "tokens; declare structure['embedding_axis'] (0 when rows are tokens, 1 for [d_model, vocab])")
    return long[0]


def check_structure(task, found: Sample) -> None:
    """Each declared ``structure`` key against the model (module docstring); ``TaskError`` naming it."""
    s = task.structure
    unknown = [k for k in s if k not in KEYS]
    if unknown:
        raise _error(task, f"unknown structure key {', '.join(map(repr, unknown))}; known: {', '.join(KEYS)}")
    p = s.get("modulus")
    if p is not None and (not isinstance(p, int) or isinstance(p, bool) or p < 2):
        raise _error(task, f"structure['modulus'] must be an integer >= 2, got {p!r}")
    if "op" in s and s["op"] not in ("+", "-", "*", "/"):
        raise _error(task, f"structure['op'] must be one of + - * /, got {s['op']!r}")
    if not isinstance(s.get("modular", True), bool):
        raise _error(task, f"structure['modular'] must be True or False, got {s['modular']!r}")
    if "embedding" in s:
        params = {n: q for n, q in found.module.named_parameters() if q.requires_grad}
        if s["embedding"] not in params:
            frozen = any(n == s["embedding"] for n, _ in found.module.named_parameters())
            what = "a frozen parameter (requires_grad=False), not trained" if frozen else "the model has no such parameter"
            raise _error(task, f"structure['embedding']={s['embedding']!r}: {what}; trainable parameters: "
                         f"{', '.join(params)}")
        if p is None:
            raise _error(task, "structure['embedding'] needs structure['modulus'] (how many tokens are numbers)")
        embedding_axis(task, tuple(params[s["embedding"]].shape))
    for key in ("logits", "operands", "probe_map"):
        if key in s and not callable(s[key]):
            raise _error(task, f"structure[{key!r}] must be a function, got {type(s[key]).__name__}")
    if "logits" in s:
        z = _call(task, "logits", s["logits"], found.out, f"the output {list(found.out.shape)}")
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != len(found.y) or (p and z.shape[1] < p):
            raise _error(task, f"structure['logits'] gives {inputs.describe(z)} from the output "
                         f"{list(found.out.shape)}; expected [N, classes] = [{len(found.y)}, >= {p or 1}]")
    if "operands" in s:
        ab = _call(task, "operands", s["operands"], found.x, f"the inputs {inputs.describe(found.x)}")
        if not (isinstance(ab, (tuple, list)) and len(ab) == 2
                and all(isinstance(t, torch.Tensor) and t.shape == (len(found.y),) for t in ab)):
            raise _error(task, f"structure['operands'] gives {inputs.describe(ab)}; expected (a, b), each "
                         f"[N] = [{len(found.y)}]")
    if "probe_at" in s and s["probe_at"] not in ("input", "output"):
        raise _error(task, f"structure['probe_at'] must be 'input' or 'output', got {s['probe_at']!r}")
    if "probe_layer" in s:
        modules = [n for n, _ in found.module.named_modules() if n]
        if s["probe_layer"] not in modules:
            shown = ", ".join(modules[:40]) + (", ..." if len(modules) > 40 else "")
            raise _error(task, f"structure['probe_layer']={s['probe_layer']!r}: the model has no such module; "
                         f"modules: {shown}")
    probe = probe_of(found.module, s)
    if probe is not None and ("probe_layer" in s or "probe_map" in s):
        representation(task, found, probe)


def _call(task, key: str, fn, value, what: str):
    try:
        with torch.no_grad():
            return fn(value)
    except Exception as e:  # noqa: BLE001 -- user code
        raise _error(task, f"structure[{key!r}] fails on {what}: {type(e).__name__}: {one_line(e)}"
                     f"{user_frame(e)}") from e


def representation(task, found: Sample, probe: Probe) -> torch.Tensor:
    """What the probe reads on the sample, ``[ROWS, features]``; ``TaskError`` when it is not such a tensor."""
    seen: list = []
    handle = hook(found.module, probe, seen)
    try:
        with torch.no_grad():
            found.module(found.x)
    finally:
        handle.remove()
    where = f"structure['probe_layer']={probe.layer!r} ({probe.at})"
    if not seen or not isinstance(seen[0], torch.Tensor):
        got = inputs.describe(seen[0]) if seen else "nothing (the module is not called)"
        raise _error(task, f"{where} reads {got}, not a tensor; probe another module or the other end "
                     "(probe_at='input' or 'output')")
    h = _call(task, "probe_map", probe.map, seen[0], f"{list(seen[0].shape)}") if probe.map else seen[0]
    if not isinstance(h, torch.Tensor) or h.dim() == 0 or h.shape[0] != len(found.y):
        raise _error(task, f"{where} reads {inputs.describe(seen[0])}"
                     f"{', mapped to ' + inputs.describe(h) if probe.map else ''}: the probe needs one row per "
                     f"example ([{len(found.y)}, features]); declare structure['probe_map']")
    return h

"""What a landscape file may hold: every group and dataset the format defines, its kind of values and its shape.

Declared once here, from the writers' own registries where they have them (``scan.POINT_VALUES``,
``scan.HISTORY``, ``trajectories.RESERVED``, ``verify.CHECKPOINT_ARRAYS``), and read by :func:`check_contents`,
which every open of a file runs (``format.check_format``): a name the format does not define, a link, or a
dataset of another kind of values (strings where numbers belong, float status codes) is refused as a foreign
file; a dataset whose shape disagrees with its group's axes as a damaged one. One line naming the first
offending path, never a traceback from deep inside a reader. Only names, dtypes and shapes are read, never the
arrays, so opening a large file stays cheap (and a file on disk is checked once per process while unchanged).

A :class:`Layout` describes one group: its datasets and subgroups by name (regular expressions over the path
relative to the group, the first match wins) and each dataset's :class:`Array` (kind and named dimensions).
Datasets of one layout that name the same dimension must agree on its size; the first declared binds it (the
scales come first). A subgroup with a layout of its own has its own dimensions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

import h5py
import numpy as np
from h5py import h5d, h5g, h5l, h5o

from ..errors import one_line
from ..status import Status
from . import scan, trajectories
from .curvature import CURVATURE, CURVATURE_AXES
from .format import StoreError
from .verify import CHECKPOINT_ARRAYS


@dataclass(frozen=True)
class Kind:
    """A kind of values: which dtypes hold it, and its name in messages."""

    accepts: Callable[[np.dtype], bool]
    words: str


FLOAT = Kind(lambda dt: dt.kind == "f", "floating-point numbers")
INT = Kind(lambda dt: dt.kind in "iu", "integers")
FLAGS = Kind(lambda dt: dt.kind in "biu" and dt.itemsize == 1, "int8 0/1 flags")
STATUS = Kind(lambda dt: dt.kind in "iu" and dt.itemsize == 1, "int8 status codes")
PHASE = Kind(lambda dt: dt.kind in "iu" and dt.itemsize == 1, "int8 phase codes")
STRING = Kind(lambda dt: h5py.check_string_dtype(dt) is not None, "strings")
ANY = "*"  # a dimension of any size, bound to nothing


@dataclass(frozen=True)
class Array:
    """A dataset: its kind of values and its dimensions (names shared within a layout, or ``ANY``)."""

    kind: Kind
    dims: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """One group: ``arrays`` and ``groups`` as ``(pattern, spec)`` pairs over paths relative to it. A group's spec
    is ``None`` (a plain subgroup: its members belong to this layout), a ``Layout``, or a function of the open
    group returning one (a scan's axes depend on its attributes)."""

    arrays: tuple[tuple[str, Array], ...] = ()
    groups: tuple[tuple[str, Union["Layout", Callable, None]], ...] = ()
    required: tuple[str, ...] = ()  # datasets every such group holds (a reader may take them for granted)
    attrs: tuple[tuple[str, "Attr"], ...] = ()  # the group's attributes the readers use: each one's kind
    needed: tuple[str, ...] = ()  # attributes every such group holds


@dataclass(frozen=True)
class Attr:
    """An attribute's kind of value, and its name in messages."""

    accepts: Callable[[object], bool]
    words: str


def _scalar(kinds: str) -> Callable[[object], bool]:
    return lambda v: np.ndim(v) == 0 and np.asarray(v).dtype.kind in kinds


NUMBER = Attr(_scalar("iuf"), "a number")
WHOLE = Attr(_scalar("iu"), "an integer")
FLAG = Attr(_scalar("biu"), "true or false")
TEXT = Attr(lambda v: isinstance(v, (str, bytes)), "a string")
NUMBERS = Attr(lambda v: np.ndim(v) <= 1 and np.asarray(v).dtype.kind in "iuf", "numbers")
STATUS_LABEL = Attr(lambda v: isinstance(v, str) and v.upper() in Status.__members__,
                    f"one of {', '.join(s.label for s in Status)}")


def _either(names) -> str:
    return "(?:" + "|".join(re.escape(n) for n in names) + ")"


def scan_layout(g: h5py.Group) -> Layout:
    """``/scan`` or a branch's group (``docs/format.md``): one norm axis, or two for a two-norm grid."""
    norms = tuple("norm" + a for a in scan.axis_names(g))
    grid = (*norms, "restart")
    arrays = [*[(name.replace("norm", "alpha", 1), Array(FLOAT, (name,))) for name in norms],
              *[(name, Array(FLOAT, (name,))) for name in norms],
              ("restart", Array(INT, ("restart",))),
              ("history/step", Array(INT, ("step",))),
              ("parameter", Array(INT, ("parameter",))),
              ("status", Array(STATUS, grid)),
              *[(name, Array(FLOAT if np.dtype(v.dtype).kind == "f" else INT, grid))
                for name, v in scan.POINT_VALUES.items()],
              *[(f"history/{name}", Array(FLOAT, (*grid, "step"))) for name in scan.HISTORY],
              ("params", Array(FLOAT, (*grid, "parameter"))),
              *[(f"curvature/{axis}", Array(INT, (axis,))) for axis in CURVATURE_AXES],
              *[(f"curvature/{name}", Array(FLOAT, (*grid, *((v.axis,) if v.axis else ()))))
                for name, v in CURVATURE.items()],
              ("constrained", Array(FLAGS, ("parameter",)))]
    if g.name != "/" + scan.GROUPS["independent"]:
        arrays.append(("last_params", Array(FLOAT, ("restart", "parameter"))))
    return Layout(tuple((re.escape(name), spec) for name, spec in arrays), (("history", None), ("curvature", None)),
                  ("status", "train_loss", "test_loss", *norms), SCAN_ATTRS, ("config", "w0", "classification"))


SCAN_ATTRS = (("config", TEXT), ("identity", TEXT), ("w0", NUMBERS), ("classification", FLAG), ("method", TEXT),
              ("method_label", TEXT), ("branch", TEXT), ("groups", TEXT), ("parameter_names", TEXT))


_SERIES = f"(?!{_either(trajectories.RESERVED)}(?:/|$))[^/]+"  # a metric's name, or a family's
TRAJECTORY = Layout(  # /trajectories/NAME: the series are open-ended, named after their metrics
    arrays=(("step", Array(INT, ("step",))),
            (f"{_either(trajectories.CHECKPOINT_SLOTS)}/{_either(CHECKPOINT_ARRAYS)}", Array(FLOAT, (ANY,))),
            (_SERIES, Array(FLOAT, ("step",))),
            (f"{_SERIES}/[^/]+", Array(FLOAT, ("step",)))),
    groups=((_either(trajectories.CHECKPOINT_SLOTS), None), (_SERIES, None)),
    required=("step", "train_loss", "test_loss", "constrained_norm"),
    attrs=(*((k, NUMBER) for k in ("weight_decay", "init_scale", "lr", "train_frac", "group_lr", "group_weight_decay")),
           *((k, WHOLE) for k in ("seed", "train_examples", "warmup", "steps", "batch_size", "checkpoint_step",
                                  "effective_lambda_index", "effective_null_dim", "effective_ideal_null_dim",
                                  "effective_parallelograms")), ("effective_lambda", NUMBER), ("effective_ideal_test_acc", NUMBER),
           ("effective_description", TEXT),
           ("fix_norm", FLAG), ("classification", FLAG), ("betas", NUMBERS), ("status", STATUS_LABEL),
           *((k, TEXT) for k in ("schedule", "config", "identity", "description"))),
    needed=("weight_decay", "init_scale", "seed", "lr", "status", "steps", "checkpoint_step", "config", "identity"))
ANALYSIS = Layout(  # /analysis: the result is attributes; one row per trajectory
    arrays=tuple((f"trajectories/{pattern}", Array(kind, ("trajectory",))) for pattern, kind in (
        ("name", STRING), ("weight_decay", FLOAT), ("(?:memorization|grokking)_step", FLOAT),
        ("(?:memorization|grokking)_reason", STRING), (r"predicted_step_\w+", FLOAT))),
    groups=(("trajectories", None),))
PHASES = Layout(arrays=(
    ("x", Array(FLOAT, ("x",))), ("y", Array(FLOAT, ("y",))), ("seed", Array(INT, ("seed",))),
    ("phase", Array(PHASE, ("x", "y", "seed"))), ("t_(?:train|test)", Array(FLOAT, ("x", "y", "seed"))),
    ("trajectory", Array(STRING, ("x", "y", "seed"))), ("effective_lambda", Array(FLOAT, ("x", "y")))),
    required=("x", "y", "seed", "phase"),
    attrs=(("steps", WHOLE), ("gap", WHOLE), *((k, NUMBER) for k in ("train_acc", "test_acc", "train_loss",
                                                                     "test_loss")),
           ("t_train_criterion", TEXT), ("t_test_criterion", TEXT)))
ROOT = Layout(attrs=(("format", TEXT), ("format_version", WHOLE), ("task", TEXT), ("task_options", TEXT),
                     ("config", TEXT), ("data_fingerprint", TEXT)), groups=(
    (re.escape(scan.GROUPS["independent"]), scan_layout),
    ("branches", None),
    (_either(g for k, g in scan.GROUPS.items() if k != "independent"), scan_layout),
    ("trajectories", None),
    ("trajectories/[^/]+", TRAJECTORY),
    ("analysis", ANALYSIS),
    ("phases", PHASES)))


def dtype_name(dt: np.dtype) -> str:
    """A dtype in words: ``float64``, ``vlen str``, ``vlen float32``, ``enum int8``, ..."""
    string = h5py.check_string_dtype(dt)
    if string is not None:
        return "vlen str" if string.length is None else f"fixed-length str of {string.length} bytes"
    base = h5py.check_vlen_dtype(dt)
    if base is not None:
        return f"vlen {dtype_name(np.dtype(base))}"
    if h5py.check_enum_dtype(dt) is not None:
        return f"enum {dt}"
    if dt.names:
        return f"compound ({', '.join(dt.names)})"
    return str(dt)


def _shown(value) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Refused(Exception):
    def __init__(self, message: str, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged


def _match(pairs, rel: str):
    for i, (pattern, spec) in enumerate(pairs):
        if re.fullmatch(pattern, rel):
            return i, spec
    return None


def _member(gid, name: bytes, where: str):
    """The object ``name`` of the group ``gid`` (only hard links: the writer makes no others), opened by
    h5py's low-level API: a third of the high-level objects' cost, on files of thousands of series."""
    link = gid.links.get_info(name).type
    if link != h5l.TYPE_HARD:
        kind = "an external link" if link == h5l.TYPE_EXTERNAL else "a soft link"
        raise _Refused(f"{where} is {kind}, the format holds no links")
    return h5o.open(gid, name)


def _not_part(obj, where: str) -> _Refused:
    what = ("a group" if isinstance(obj, h5g.GroupID) else
            f"a dataset of {dtype_name(obj.dtype)}, shape {list(obj.shape)}" if isinstance(obj, h5d.DatasetID)
            else "a named datatype")
    return _Refused(f"{where} is not part of the format ({what})")


def _walk(gid, where: str, layout: Layout, shapes: bool) -> None:
    """Check the members of the group ``gid`` (path ``where``) against ``layout`` (raises ``_Refused``)."""
    found = []  # (declaration index, relative path, dataset, spec): shapes are checked in declaration order

    def visit(group, prefix: str) -> None:
        for raw in group:
            rel = prefix + raw.decode("utf-8", "replace")
            path = f"{where}/{rel}"
            obj = _member(group, raw, path)
            if isinstance(obj, h5g.GroupID):
                hit = _match(layout.groups, rel)
                if hit is None:
                    raise _not_part(obj, path)
                spec = hit[1]
                if spec is None:
                    visit(obj, rel + "/")
                else:
                    _walk(obj, path, spec if isinstance(spec, Layout) else spec(h5py.Group(obj)), shapes)
                continue
            hit = _match(layout.arrays, rel) if isinstance(obj, h5d.DatasetID) else None
            if hit is None:
                raise _not_part(obj, path)
            if not hit[1].kind.accepts(obj.dtype):
                raise _Refused(f"{path} has dtype {dtype_name(obj.dtype)}, the format stores {hit[1].kind.words}")
            found.append((hit[0], rel, obj.shape, hit[1]))

    group = h5py.Group(gid)
    for name, attr in layout.attrs if shapes else ():  # (damage: not looked for on an --overwrite's open)
        if name in group.attrs and not attr.accepts(group.attrs[name]):
            value = group.attrs[name]
            raise _Refused(f"{where or '/'} attribute {name} is {_shown(value)}, not {attr.words}", damaged=True)
    for name in layout.needed if shapes else ():
        if name not in group.attrs:
            raise _Refused(f"{where or '/'} attribute {name} is missing", damaged=True)
    visit(gid, "")
    if not shapes:  # (damage, which the --overwrite of the command that wrote it repairs, is not looked for)
        return
    held = {rel for _, rel, _, _ in found}
    missing = [name for name in layout.required if name not in held]
    if missing:
        raise _Refused(f"{where}/{missing[0]} is missing", damaged=True)
    sizes: dict[str, int] = {}
    for _, rel, shape, spec in sorted(found, key=lambda t: t[:2]):
        agree = len(shape) == len(spec.dims) and all(
            d == ANY or sizes.setdefault(d, n) == n for d, n in zip(spec.dims, shape))
        if not agree:
            want = ", ".join("any" if d == ANY else f"{d}={sizes[d]}" if d in sizes else d for d in spec.dims)
            want = f"{len(spec.dims)}-D" if set(spec.dims) == {ANY} else f"[{want}]"
            raise _Refused(f"{where}/{rel} has shape {list(shape)}, not {want}", damaged=True)


def check_contents(f: h5py.File, path, shapes: bool = True) -> None:
    """Refuse (``StoreError``, one line naming the first offending path) a landscape file that holds a group or
    dataset the format does not define, a link, or a dataset of another kind of values (a foreign file), or, with
    ``shapes``, a dataset whose shape disagrees with its group's axes (a damaged file). Reads metadata only."""
    try:
        _walk(f.id, "", ROOT, shapes)
    except _Refused as e:
        what = "damaged or incomplete landscape file" if e.damaged else \
            "not a landscape file as this version writes it"
        raise StoreError(f"{path}: {what}: {e}") from None
    except (KeyError, OSError, ValueError, TypeError, RuntimeError) as e:  # an object the library cannot open
        raise StoreError(f"{path}: damaged or incomplete landscape file ({type(e).__name__}: {one_line(e)})") from None

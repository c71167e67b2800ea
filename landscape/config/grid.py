"""Value grids: parse the ``--norms`` specification (and ``landscape phases``' axes) into a sorted array.

Accepted forms::

    START:STOP            11 linearly spaced values from START to STOP
    START:STOP:NUM        NUM linearly spaced values
    START:STOP:NUM:log    NUM logarithmically spaced values
    A,B,C                 an explicit list (sorted, duplicates refused)

Every value must be a finite positive number (or, where :func:`parse_values` is told so, non-negative:
a weight-decay axis may start at 0), and STOP must not be below START.

A two-norm grid gives ``GLOB=SPEC`` twice (:func:`norm_groups`): each glob names
a parameter group, each spec its norms, and the grid is their product.

>>> parse_norms("0.5:3:6").tolist()
[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
>>> parse_norms("0.1:10:3:log").round(6).tolist()
[0.1, 1.0, 10.0]
>>> parse_norms("2,1,3").tolist()
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_NUM = 11
MAX_NUM = 100_000


def _number(text: str, what: str, spec: str, noun: str = "norm", zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{noun} spec {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{noun} spec {spec!r}: {what} must be finite, got {text!r}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{noun} spec {spec!r}: {noun}s must be {'non-negative' if zero else 'positive'}, "
                         f"got {what} {text!r}")
    return value


def parse_norms(spec: str) -> np.ndarray:
    """Return the norms described by ``spec`` as a float64 array, ascending.

    Raises ``ValueError`` with a one-line message for malformed input.
    """
    return parse_values(spec)


def parse_values(spec: str, noun: str = "norm", zero: bool = False) -> np.ndarray:
    """The ascending values of ``spec`` (float64); ``noun`` names them in messages, ``zero`` admits 0 (not on a
    log scale). ``ValueError`` with a one-line message for malformed input.

    >>> parse_values("0:10:3", "weight decay", zero=True).tolist()
    [0.0, 5.0, 10.0]
    """
    spec = spec.strip()
    if not spec:
        raise ValueError(f"{noun} spec is empty; use START:STOP[:NUM[:log]] or a comma list like 0.5,1,2")

    def number(text, what):
        return _number(text, what, spec, noun, zero)

    if "," in spec:
        parts = [p.strip() for p in spec.split(",")]
        if any(not p for p in parts):
            raise ValueError(f"{noun} spec {spec!r}: empty entry in comma list")
        values = np.array(sorted(number(p, "value") for p in parts))
        if np.any(np.diff(values) == 0):
            raise ValueError(f"{noun} spec {spec!r}: duplicate values")
        return values
    parts = spec.split(":")
    if len(parts) == 1:
        return np.array([number(parts[0], "value")])
    if len(parts) > 4:
        raise ValueError(f"{noun} spec {spec!r}: expected START:STOP[:NUM[:log]]")
    start = number(parts[0], "START")
    stop = number(parts[1], "STOP")
    if stop < start:
        raise ValueError(f"{noun} spec {spec!r}: STOP ({stop:g}) is below START ({start:g})")
    num = DEFAULT_NUM
    if len(parts) >= 3:
        try:
            num = int(parts[2])
        except ValueError:
            raise ValueError(f"{noun} spec {spec!r}: NUM {parts[2]!r} is not an integer") from None
        if num < 1:
            raise ValueError(f"{noun} spec {spec!r}: NUM must be at least 1, got {num}")
        if num > MAX_NUM:
            raise ValueError(f"{noun} spec {spec!r}: NUM must be at most {MAX_NUM}, got {num}")
    scale = "lin"
    if len(parts) == 4:
        scale = parts[3].strip().lower()
        if scale not in ("lin", "log"):
            raise ValueError(f"{noun} spec {spec!r}: spacing must be 'log' or 'lin', got {parts[3]!r}")
    if num == 1:
        if stop != start:
            raise ValueError(f"{noun} spec {spec!r}: NUM=1 needs START == STOP")
        return np.array([start])
    if stop == start:
        raise ValueError(f"{noun} spec {spec!r}: START equals STOP but NUM is {num}")
    if scale == "log":
        if start == 0:
            raise ValueError(f"{noun} spec {spec!r}: a log-spaced axis cannot start at 0")
        values = np.geomspace(start, stop, num)
    else:
        values = np.linspace(start, stop, num)
    values[0], values[-1] = start, stop
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"{noun} spec {spec!r}: START and STOP are too close for {num} distinct values")
    return values


def product(axes: list[np.ndarray]) -> np.ndarray:
    """The grid of two (or more) norm axes as rows ``[K1 * K2, 2]``, the first axis varying slowest.

    >>> product([np.array([1.0, 2.0]), np.array([5.0, 6.0, 7.0])]).tolist()[:4]
    [[1.0, 5.0], [1.0, 6.0], [1.0, 7.0], [2.0, 5.0]]
    """
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


def norm_groups(norms: str | list[str]) -> list[tuple[str, str]] | None:
    """``[(glob, spec), (glob, spec)]`` for a two-norm grid, None for one norm (a plain SPEC).

    >>> norm_groups(["embed*=0.3:3:9", "*=0.5:5:9"])
    [('embed*', '0.3:3:9'), ('*', '0.5:5:9')]
    >>> norm_groups("0.5:3") is None
    True
    """
    specs = [norms] if isinstance(norms, str) else list(norms)
    grouped = ["=" in s for s in specs]
    if not any(grouped):
        return None  # plain specs given more than once: the last wins, as for every other flag
    if not all(grouped):
        raise ValueError("--norms: a two-norm grid gives GLOB=SPEC for both groups; got "
                         + ", ".join(repr(s) for s in specs))
    if len(specs) != 2:
        hint = (f"for one group use --constrain {specs[0].split('=', 1)[0].strip()!r} --norms SPEC"
                if len(specs) == 1 else "at most two groups")
        raise ValueError(f"--norms: a grouped grid needs exactly two GLOB=SPEC groups, got {len(specs)} ({hint})")
    out = []
    for s in specs:
        glob, spec = (part.strip() for part in s.split("=", 1))
        if not glob:
            raise ValueError(f"--norms {s!r}: the group's glob before '=' is empty")
        parse_norms(spec)  # malformed specs are refused here, with the grid's messages
        out.append((glob, spec))
    if out[0][0] == out[1][0]:
        raise ValueError(f"--norms: both groups use the glob {out[0][0]!r}; the second would match nothing")
    return out

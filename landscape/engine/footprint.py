"""What a run will hold in memory at once, bounded by what this machine has, checked before any step runs.

A count the format could store (a billion restarts, a log row every step of 10^11) can still ask for more memory
than the machine has; without a check the run would allocate until it is killed, long after the command was read.
Each planner states what its settings make it hold (a lower bound: the arrays it allocates up front) and
:func:`check` refuses the first that exceeds the machine's physical memory, in one line naming the settings.

>>> check([("--restarts 10", 10 * 4)], memory=1 << 30)
>>> check([("--restarts 10**9 (10**9 initializations of 1000 parameters)", 4 * 10 ** 12)], memory=1 << 34)
Traceback (most recent call last):
    ...
landscape.errors.BadInput: --restarts 10**9 (10**9 initializations of 1000 parameters) needs at least 3.6 TiB of memory; this machine has 16 GiB
"""

from __future__ import annotations

import os

from ..errors import BadInput

FLOAT32, FLOAT64 = 4, 8
FILE_COPIES = 2  # a commit holds the file's in-memory image and the bytes it reads back (landscape.store.durable)


def machine_memory() -> int | None:
    """Physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def size(n: float) -> str:
    """``n`` bytes in binary units: ``3.6 TiB``, ``16 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.2g} {unit}" if n < 10 else f"{n:.0f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check(needs: list[tuple[str, float]], memory: int | None = None) -> None:
    """Refuse the first ``(what, bytes)`` whose bytes exceed ``memory`` (default: this machine's)."""
    memory = machine_memory() if memory is None else memory
    if memory is None:
        return
    for what, nbytes in needs:
        if nbytes > memory:
            raise BadInput(f"{what} needs at least {size(nbytes)} of memory; this machine has {size(memory)}")

"""Keep freed memory for reuse: a process setting that makes CPU steps cheaper.

An optimizer step allocates and frees the same few tensors of a megabyte or
more again and again. By default glibc's ``malloc`` gives such blocks back to
the kernel when they are freed (``munmap`` above its mmap threshold, or by
trimming the top of the heap), and the next step faults fresh zeroed pages in.
On a 2-core CPU that was about 31,000 page faults and 36% of the time of one
digits gradient for 32 points (``benchmarks/allocator.py``). ``keep_freed_memory`` raises the
mmap threshold and turns trimming off, so freed blocks are reused. Peak
resident memory is unchanged; memory is just not handed back before the
process ends. ``scan.run_chunk`` and ``train.run`` call it; it does nothing
where the C library is not glibc.

The heap then never shrinks by itself, and work of other shapes between steps
(training's evaluations at logged steps: the test set, the full training set)
leaves freed holes that later blocks do not fit: a 121-member phase grid's
resident memory grew from 1.1 to 4.4 GiB over 3000 steps. ``release_freed_memory``
(glibc's ``malloc_trim``) hands the free pages back; training calls it after each
logged evaluation, about a hundred times a run. It trims only when the heap holds more
than ``RELEASE_ABOVE`` free bytes (glibc's ``mallinfo2``): a trim costs the next steps
their page faults again, which on a 12-member teacher-student sweep (30 MiB free, 76
logged steps) was 0.40 of its 1.34 s, for no memory worth having back.
"""

from __future__ import annotations

import ctypes
import functools
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# Blocks above the threshold are mapped and unmapped one by one. Recent glibc
# accepts 1 GiB; older releases cap the value at 32 MiB on 64-bit systems.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
RELEASE_ABOVE = 64 << 20  # free heap bytes above which release_freed_memory trims


class _Mallinfo2(ctypes.Structure):  # glibc >= 2.33, malloc.h: every field a size_t
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.cache
def _glibc():
    """The C library when it is glibc (None elsewhere)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux architecture it supports
    except OSError:
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc to keep freed blocks for reuse; True when it applied (it runs once per process)."""
    libc = _glibc()
    try:
        if libc is None or not libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1):
            return False
        return any(libc.mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS)
    except AttributeError:
        return False


def free_heap_bytes() -> int | None:
    """Bytes the heap holds free (glibc's ``mallinfo2().fordblks``, all arenas); None where it cannot be read."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return int(libc.mallinfo2().fordblks)


def release_freed_memory(above: int = RELEASE_ABOVE) -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``) when it holds more than ``above``
    free bytes (always where that cannot be read); True when it trimmed."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    free = free_heap_bytes()
    if free is not None and free <= above:
        return False
    libc.malloc_trim(0)
    return True

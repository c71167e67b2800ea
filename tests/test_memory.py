"""``landscape.engine.allocator``: freed heap memory is handed back only when there is enough of it to matter."""

import os

import pytest

from landscape.engine import allocator as memory


def _resident() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(memory.free_heap_bytes() is None, reason="glibc's mallinfo2 is not available here")
def test_release_trims_only_above_the_threshold():
    memory.keep_freed_memory()  # freed blocks stay in the heap (below any glibc's largest mmap threshold, 32 MiB)
    blocks = [bytearray(16 << 20) for _ in range(12)]  # 192 MiB allocated, then freed into the heap
    del blocks
    before, resident = memory.free_heap_bytes(), _resident()
    assert before >= 128 << 20
    assert not memory.release_freed_memory(above=before + 1)  # not enough free: nothing is trimmed
    assert _resident() > resident - (16 << 20)
    assert memory.release_freed_memory(above=64 << 20)
    # the pages go back to the system: from the heap's top (free bytes fall) or, where a later block sits above
    # them, by madvise inside the heap (free bytes stay, resident memory falls); resident memory falls either way
    assert _resident() < resident - (64 << 20)

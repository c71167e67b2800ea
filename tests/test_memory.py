"""``landscape.engine.allocator``: freed heap memory is handed back only when there is enough of it to matter."""

import pytest

from landscape.engine import allocator as memory


@pytest.mark.skipif(memory.free_heap_bytes() is None, reason="glibc's mallinfo2 is not available here")
def test_release_trims_only_above_the_threshold():
    memory.keep_freed_memory()  # freed blocks stay in the heap (below any glibc's largest mmap threshold, 32 MiB)
    blocks = [bytearray(16 << 20) for _ in range(12)]  # 192 MiB allocated, then freed into the heap
    del blocks
    before = memory.free_heap_bytes()
    assert before >= 128 << 20
    assert not memory.release_freed_memory(above=before + 1)  # not enough free: nothing is trimmed
    assert memory.release_freed_memory(above=64 << 20)
    assert memory.free_heap_bytes() < before

"""How much slower is an elementwise pass when its data are not in cache? (The ensemble's optimizer case.)

    python benchmarks/cache.py [--shape 32,11205] [--calls 200]

Times ``x * y`` on two float32 tensors of the given shape (default: the
teacher-student scan's ``[K = 32, P = 11205]`` parameters) called back to back,
where the data stay in cache, and called after a 64 MiB write sweep that
evicts them, as a step's other work does; prints the time a call and the
bandwidth (two reads and one write).
"""

from __future__ import annotations

import argparse
import time

import torch

from landscape.engine import allocator as memory


def timed(fn, before, calls: int) -> float:
    total = 0.0
    for _ in range(calls):
        before()
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
    return total / calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="32,11205")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    memory.keep_freed_memory()
    shape = [int(n) for n in args.shape.split(",")]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    sweep = torch.zeros(16 << 20)  # 64 MiB
    nbytes = 3 * x.numel() * x.element_size()
    print(f"x * y on [{args.shape}] float32, {torch.get_num_threads()} threads, {args.calls} calls each")
    for label, before in (("back to back (in cache)", lambda: None), ("after a 64 MiB sweep", lambda: sweep.add_(1))):
        for _ in range(10):
            before()
            x * y
        s = timed(lambda: x * y, before, args.calls)
        print(f"  {label:<24} {s * 1e6:7.1f} us a call  {nbytes / s / 1e9:6.1f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

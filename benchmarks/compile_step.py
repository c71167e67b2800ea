"""What the fused optimizer steps (``--compile``) buy: the step alone, and a scan's steps, eager against fused.

    python benchmarks/compile_step.py [--k 32] [--steps 300] [--device cpu]

1. The optimizer step alone on ``[K, P]`` (teacher-student's P): each method of ``landscape.fused``, eager
   (``landscape.optim``, the reference) and compiled, in milliseconds and in *passes*, the time of one
   elementwise pass over ``[K, P]`` (``theta * 2``, the unit of issue 16's target: a Riemannian Adam step in
   at most 10 passes' worth).
2. A teacher-student scan of K points, the optimization alone (``scan.run_chunk``), ``--compile off`` against
   ``on``, and the compilation's own time (first call of a new shape in this process; inductor's on-disk
   cache makes it shorter in later processes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import fused, memory, optim, scan, sphere
from landscape.config import ScanConfig, resolve
from landscape.tasks import get_task


def per_call(fn, repeats: int) -> float:
    """Seconds per call of ``fn()``, best of three runs of ``repeats`` calls, after a warm-up."""
    fn()
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def step_alone(k: int, p: int, repeats: int, device: str) -> None:
    torch.manual_seed(0)
    theta = torch.randn(k, p, device=device)
    target = sphere.constrained_norm(theta)
    grad = torch.randn(k, p, device=device)
    one_pass = per_call(lambda: theta * 2, repeats * 5)
    print(f"step alone on [{k}, {p}]: one elementwise pass {one_pass * 1e6:.0f} us")
    wd = torch.full((k, 1), 0.1, device=device)
    for kind, kw in (("riemannian", {"target": target}), ("project", {"target": target}),
                     ("adamw", {"weight_decay": wd})):
        times = {}
        for compiled in (False, True):
            step = fused.Step(kind, compiled)
            state = optim.AdamState(torch.zeros_like(theta), torch.zeros_like(theta), 5)
            times[compiled] = per_call(lambda: step(theta, grad, state, 0.01, **kw), repeats)
        print(f"  {fused.LABELS[kind]:<16} eager {times[False] * 1e3:6.3f} ms ({times[False] / one_pass:4.1f} passes), "
              f"fused {times[True] * 1e3:6.3f} ms ({times[True] / one_pass:4.1f} passes): {times[False] / times[True]:.2f}x")


def scan_steps(k: int, steps: int, device: str) -> None:
    times, compile_s = {}, []
    for mode in ("off", "on"):
        cfg = resolve(ScanConfig, flags={"norms": f"0.1:10:{k}:log", "steps": steps, "compile": mode,
                                         "device": device})
        plan = scan.make_plan(cfg, get_task(cfg.task))
        step = scan.stepper(plan, on_note=lambda text: compile_s.append(text))
        scan.run_chunk(plan, np.arange(k), step=step)  # the first run compiles (mode on)
        t0 = time.perf_counter()
        scan.run_chunk(plan, np.arange(k), step=step)
        times[mode] = time.perf_counter() - t0
    print(f"teacher-student scan, K = {k}, {steps} steps, the optimization alone: --compile off "
          f"{times['off'] / steps * 1e3:.2f} ms a step, on {times['on'] / steps * 1e3:.2f} ms a step "
          f"({times['off'] / times['on']:.2f}x); {'; '.join(compile_s)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    why = fused.unavailable(args.device)
    if why:
        print(f"torch.compile cannot run here: {why}")
        return 1
    memory.keep_freed_memory()
    plan = scan.make_plan(ScanConfig(), get_task("teacher-student"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    scan_steps(args.k, args.steps, args.device)  # first: its compilation is this process's first
    step_alone(args.k, plan.layout.size, 200, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

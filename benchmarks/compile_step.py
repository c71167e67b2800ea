"""What the fused optimizer steps (``--compile``) buy: the step alone, and a scan's steps, eager against fused.

    python benchmarks/compile_step.py [--k 32] [--steps 300] [--device cpu]

1. The optimizer step alone on ``[K, P]`` (teacher-student's P): each method of ``landscape.engine.fused``, eager
   (``landscape.engine.optim``, the reference) and compiled, in milliseconds and in *passes*, the time of one
   elementwise pass over ``[K, P]`` (``theta * 2``, the unit of issue 16's target: a Riemannian Adam step in
   at most 10 passes' worth).
2. A teacher-student scan of 4 and of K points, the optimization alone (``scan.run_chunk``), ``--compile off``
   against ``on`` (the whole step compiled, ``landscape.engine.whole_step``), the compilation's own time (first call of a
   new shape in this process; inductor's on-disk cache makes it shorter in later processes), and the saving
   per step and per element-step fitted to the two sizes (``fused.SAVING``, the rule of ``--compile auto``).
3. The mlp kernel's gradient alone (``mlp.Chain.grad``) of K members, eager against ``torch.compile``d, on
   teacher-student and digits (the tool compiles it only together with the optimizer step, section 2).
4. The vmap engine's whole step (gradient and AdamW update, ``landscape.engine.whole_step.WholeStep``) of an 8-member
   ensemble of Nanda's transformer (modular, p = 11, 23, 31 and 41, train fraction 0.3, full batch), eager
   against compiled whole, with the compilation's time, the gradient's flop (``whole.member_flop``),
   whether ``--compile`` compiles it whole there (``whole.pays``), and the same 8 members' steps one at a time
   on the loop engine (plain autograd and AdamW, as a training script would).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from landscape.engine import fused, allocator as memory, optim, sphere
from landscape.experiments import scan
from landscape.config.settings import ScanConfig, resolve
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


def step_alone(k: int, p: int, repeats: int, device: str) -> dict:
    """Eager and fused seconds of each method's step on ``[k, p]``, and of one elementwise pass (printed too)."""
    memory.keep_freed_memory()  # as every run of the tool does: freed blocks reused, not faulted in again
    torch.manual_seed(0)
    theta = torch.randn(k, p, device=device)
    target = sphere.constrained_norm(theta)
    grad = torch.randn(k, p, device=device)
    one_pass = per_call(lambda: theta * 2, repeats * 5)
    print(f"step alone on [{k}, {p}]: one elementwise pass {one_pass * 1e6:.0f} us")
    wd = torch.full((k, 1), 0.1, device=device)
    out = {"pass": one_pass}
    for kind, kw in (("riemannian", {"target": target}), ("project", {"target": target}),
                     ("adamw", {"weight_decay": wd})):
        times = {}
        for compiled in (False, True):
            step = fused.Step(kind, compiled)
            state = optim.AdamState(torch.zeros_like(theta), torch.zeros_like(theta), 5)
            times[compiled] = per_call(lambda: step(theta, grad, state, 0.01, **kw), repeats)
        print(f"  {fused.LABELS[kind]:<16} eager {times[False] * 1e3:6.3f} ms ({times[False] / one_pass:4.1f} passes), "
              f"fused {times[True] * 1e3:6.3f} ms ({times[True] / one_pass:4.1f} passes): {times[False] / times[True]:.2f}x")
        out[kind] = times
    return out


def scan_steps(k: int, steps: int, device: str, rounds: int = 5) -> tuple[float, float]:
    notes, runs, times = [], {}, {"off": [], "on": []}
    for mode in ("off", "on"):
        cfg = resolve(ScanConfig, flags={"norms": f"0.1:10:{k}:log", "steps": steps, "compile": mode,
                                         "device": device})
        plan = scan.make_plan(cfg, get_task(cfg.task))
        step = scan.stepper(plan, on_note=notes.append)
        scan.run_chunk(plan, np.arange(k), step=step)  # the first run compiles (mode on)
        runs[mode] = (plan, step)
    for _ in range(rounds):  # alternating, so a slow spell of the machine hits both
        for mode, (plan, step) in runs.items():
            t0 = time.perf_counter()
            scan.run_chunk(plan, np.arange(k), step=step)
            times[mode].append((time.perf_counter() - t0) / steps)
    off, on = (statistics.median(times[m]) for m in ("off", "on"))
    print(f"teacher-student scan, K = {k}, {steps} steps, the optimization alone (median of {rounds} alternating "
          f"runs): --compile off {off * 1e3:.2f} ms a step, on {on * 1e3:.2f} ms a step ({off / on:.2f}x); "
          f"{'; '.join(notes)}")
    return off, on


def gradient(task: str, k: int, repeats: int, device: str) -> None:
    from landscape.engine import worker as loop

    t = get_task(task)
    module, layout, _, _ = loop.model_of(t, "*", "mlp", 0)
    worker = loop.Worker(t, module, layout, "mlp", device)
    x, y = worker.data["train"]
    theta = torch.stack([loop.init_params(t, layout, s)[1] for s in range(k)]).to(device)
    chain = worker.ensemble._impl  # the mlp engine's Chain
    eager = per_call(lambda: chain.grad(theta, x, y), repeats)
    compiled = torch.compile(chain.grad, dynamic=False)
    compiled(theta, x, y)
    fast = per_call(lambda: compiled(theta, x, y), repeats)
    print(f"mlp gradient, {task}, K = {k}: eager {eager * 1e3:.2f} ms, compiled {fast * 1e3:.2f} ms")


def whole_vmap(p: int, repeats: int, device: str) -> None:
    from landscape.engine import worker as loop, whole_step as whole

    t = get_task("modular", {"model": "transformer", "p": p, "train_fraction": 0.3})
    module, layout, _, _ = loop.model_of(t, "*", "vmap", 0)
    worker = loop.Worker(t, module, layout, "vmap", device)
    theta = torch.stack([loop.init_params(t, layout, s)[1] for s in range(8)]).to(device)
    wd = torch.full((8, 1), 1.0, device=device)
    times, limit = {}, whole.MAX_FLOP
    whole.MAX_FLOP = float("inf")  # compiled whole at every size here, to show where it pays
    try:
        for compiled in (False, True):
            step = whole.WholeStep(fused.Step("adamw", compiled, (0.9, 0.98)), worker)
            state = optim.AdamState.zeros_like(theta)
            t0 = time.perf_counter()
            step(theta, state, None, 1e-3, weight_decay=wd)
            took = time.perf_counter() - t0
            times[compiled] = per_call(lambda: step(theta, state, None, 1e-3, weight_decay=wd), repeats)
    finally:
        whole.MAX_FLOP = limit
    one = loop.Worker(t, module, layout, "loop", device)  # the reference: a training script's step, member by member
    adam = optim.AdamState.zeros_like(theta[:1])

    def members_one_at_a_time():
        for j in range(8):
            grad, _ = one.grad(theta[j:j + 1])
            optim.adamw_step(theta[j:j + 1], grad, adam, 1e-3, wd[j:j + 1], (0.9, 0.98))

    looped = per_call(members_one_at_a_time, repeats)
    flop = 8 * whole.member_flop(t, worker.ensemble.module, layout, "vmap", len(t.x_train))
    print(f"vmap whole step, transformer p = {p}, 8 members, {flop / 1e9:.2f} GFLOP: eager {times[False] * 1e3:.2f} ms, "
          f"compiled whole {times[True] * 1e3:.2f} ms ({times[False] / times[True]:.2f}x; compilation {took:.1f} s); "
          f"compiled whole by the tool: {'yes' if whole.pays(flop) else 'no'}; the 8 members one at a time on the "
          f"loop engine {looped * 1e3:.2f} ms, so the ensemble is {looped / times[False]:.2f}x the loop eager and "
          f"{looped / times[True]:.2f}x compiled whole")


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
    small = scan_steps(4, args.steps * 4, args.device)  # first: its compilation is this process's first
    large = scan_steps(args.k, args.steps, args.device)
    p = plan.layout.size
    per_element = ((large[0] - large[1]) - (small[0] - small[1])) / ((args.k - 4) * p)
    per_step = (small[0] - small[1]) - per_element * 4 * p
    print(f"saving of the whole step: {per_step * 1e3:.2f} ms a step + {per_element * 1e9:.2f} ns an element-step "
          f"(fused.SAVING assumes {fused.SAVING['mlp'][0] * 1e3:.2f} ms + {fused.SAVING['mlp'][1] * 1e9:.2f} ns); "
          f"per point-step, 4 points / {args.k} points: eager {small[0] / 4 / (large[0] / args.k):.2f}x, "
          f"compiled {small[1] / 4 / (large[1] / args.k):.2f}x")
    step_alone(args.k, plan.layout.size, 200, args.device)
    gradient("teacher-student", args.k, 100, args.device)
    gradient("digits", args.k, 10, args.device)
    for p in (11, 23, 31, 41):
        whole_vmap(p, 10, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Would torch.compile help? One scan step (mlp gradient + Riemannian Adam), eager against compiled.

    python benchmarks/compile_step.py [--k 32] [--steps 200]

The step is written as one function of tensors (the step count and learning
rate are tensors, so the compiled graph is reused), compiled with
``torch.compile(dynamic=False)`` and timed against the same function run
eagerly on teacher-student. The tool does not use torch.compile: on the 2-core
CPU it was measured not to change what bounds the step (README, Performance).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import memory, optim, scan, sphere
from landscape.config import ScanConfig
from landscape.ensemble import Ensemble
from landscape.tasks import get_task


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    memory.keep_freed_memory()
    plan = scan.make_plan(ScanConfig(norms=f"0.1:10:{args.k}:log"), get_task("teacher-student"))
    ens = Ensemble(plan.task, plan.module, plan.layout, "mlp")
    target, theta = scan.start(plan, np.arange(args.k))
    x, y = plan.task.x_train, plan.task.y_train
    b1, b2 = optim.BETAS

    def step(theta, m, v, t, lr):
        g = sphere.tangent(theta, ens.grad(theta, x, y)[0])
        m, v = torch.lerp(m, g, 1 - b1), v * b2 + (1 - b2) * g * g
        u = sphere.tangent(theta, m / ((v / (1 - b2**t)).sqrt() + optim.EPS) / (1 - b1**t))
        new = sphere.retract(theta - lr * u, target)
        return new, sphere.tangent(new, m), v

    t0 = time.perf_counter()
    compiled = torch.compile(step, dynamic=False)
    compiled(theta, torch.zeros_like(theta), torch.zeros_like(theta), torch.tensor(1.0), torch.tensor(0.01))
    print(f"teacher-student, K = {args.k}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"compilation {time.perf_counter() - t0:.1f} s")
    for name, fn in (("eager", step), ("compiled", compiled)):
        th, m, v = theta.clone(), torch.zeros_like(theta), torch.zeros_like(theta)
        for i in range(20):
            th, m, v = fn(th, m, v, torch.tensor(i + 1.0), torch.tensor(0.01))
        t0 = time.perf_counter()
        for i in range(args.steps):
            th, m, v = fn(th, m, v, torch.tensor(i + 21.0), torch.tensor(0.01))
        print(f"  {name:<9} {(time.perf_counter() - t0) / args.steps * 1e3:6.2f} ms a step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What keeping freed memory (``landscape.engine.allocator``) is worth: one gradient with and without it.

    python benchmarks/allocator.py [--k 32] [--task teacher-student] [--calls 200]

Each setting runs in its own fresh process (the setting cannot be undone within
one): the mlp kernel's full-batch gradient of K points, timed over ``--calls``
calls after a warm-up, with the minor page faults per call (``ru_minflt``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(task_name: str, k: int, calls: int, keep: bool) -> dict:
    import torch

    from landscape.engine import allocator as memory
    from landscape.engine.ensemble import Ensemble
    from landscape.engine.layout import layout_of
    from landscape.engine.worker import init_params
    from landscape.tasks import get_task

    if keep:
        memory.keep_freed_memory()
    task = get_task(task_name)
    module = task.model()
    layout = layout_of(module)
    ens = Ensemble(task, module, layout, "mlp")
    theta = torch.stack([init_params(task, layout, s)[1] for s in range(k)])
    for _ in range(10):
        ens.grad(theta, task.x_train, task.y_train)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls // 5):
            ens.grad(theta, task.x_train, task.y_train)
        best = min(best, (time.perf_counter() - t0) / (calls // 5))
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls
    return {"ms": best * 1e3, "faults": faults}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="teacher-student")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--child", choices=["keep", "default"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.task, args.k, args.calls, args.child == "keep")))
        return 0
    runs = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--task", args.task, "--k", str(args.k),
                              "--calls", str(args.calls)], check=True, capture_output=True, text=True).stdout
        runs[mode] = json.loads(out)
    print(f"{args.task}, K = {args.k}, mlp kernel, full-batch gradient (best of 5 x {args.calls // 5} calls)")
    for mode, label in (("default", "glibc defaults"), ("keep", "keep_freed_memory()")):
        print(f"  {label:<20} {runs[mode]['ms']:7.2f} ms a call  {runs[mode]['faults']:8.1f} page faults a call")
    print(f"  time saved: {100 * (1 - runs['keep']['ms'] / runs['default']['ms']):.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())

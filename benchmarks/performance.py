"""How close do the scan and the training sweeps run to the machine's arithmetic limit? (issue 6)

One run measures, on the same machine and in the same session:

1. peak     float32 ``torch.matmul`` of two large square matrices (best of a few
            repetitions after warm-up): the machine's matrix-multiply peak, in GFLOP/s.
2. scan     the scan's ensemble engines against the one-point-at-a-time ``loop``
            engine (same ScanConfig, same seeds, so the same arithmetic) at
            K = 8, 32, 64 norms (R = 1) on teacher-student and digits (1000 train
            samples, full batch): ``mlp`` (hand-batched MLP kernel; what the
            default ``--engine auto`` runs on these tasks) and ``vmap``
            (``torch.func``, any model). Seconds, point-steps/s, the ratio of
            time per point-step (loop / ensemble) and the largest relative
            difference of the final train loss from the loop engine.
            The loop engine runs at most ``--loop-points`` evenly spaced points of
            each grid (its time per point-step does not depend on K); the table
            says how many.
3. flops    achieved GFLOP/s of those runs from an analytic count of the matrix
            work, and its fraction of the peak of section 1.
4. sweep    a 12-member training sweep (weight decay 0.03, 0.1, 0.3 x seeds 0-3,
            teacher-student, init scale 8, lr 0.003, full batch) as one ensemble
            against the same 12 members trained one after the other
            (``train.run`` on a group of one each): with the ``loop`` engine
            (plain autograd on the module, as a training script would do it;
            the target's reference) and with the ``mlp`` engine on an ensemble
            of one. Seconds, speed-ups, and the largest relative difference of
            the final logged train loss.
5. scaling  seconds per step of the mlp-engine scan (one chunk of K points) for
            K = 1, 2, 4, ..., 128 on both tasks, with point-steps/s and GFLOP/s,
            so the turn from overhead-bound to compute-bound shows.
6. memory   the peak resident memory (ru_maxrss) of every case above, plus a
            digits scan at K = 128 run the way the CLI runs it when ``--chunk``
            is not given (chunks of ``scan.auto_chunk(plan)`` points).
7. breakdown  where a teacher-student step's time goes (K = 32 scan with
            Riemannian Adam; the 12-member sweep with AdamW): the gradient and
            the optimizer update timed apart inside a loop, against the matrix
            products alone ("matmul floor").
8. targets  issue 6's targets with the measured value and PASS/FAIL, and for the
            two speed ratios a bound: the ratio if an ensemble step cost only
            its batched matrix products (the mlp kernel's products with the
            same shapes, timed alone in their own process: "matmul floor");
            for the sweep, plus the ensemble's logging as timed in its run.
9. wave2    issue 16's targets: the two speed ratios of section 8 against 15x
            and 8x, the Riemannian Adam step alone on [32, 11205] in passes
            (fused by ``--compile``, ``benchmarks/compile_step.py``), Nanda's
            transformer as an 8-member ensemble against 8 loop runs at p = 59
            and its share of the matmul peak at p = 113
            (``benchmarks/transformer.py``), the README's first command end to
            end (median of fresh processes) and, on a GPU, the digits scan at
            K = 128. These run in this process, after the others.

Every case (one engine on one configuration) runs in its own fresh process,
forked from a clean server process that has only imported torch, landscape and
scikit-learn (``multiprocessing`` "forkserver"), so each case's peak resident
memory is its own; it includes what the imports cost (the case's "baseline",
about 275 MiB with torch 2.13 on CPU). Each
case does a short warm-up run (2 steps, same points) before the timed one.
Timings include the final evaluation of each scan point and the logging of
each training run, i.e. what the tool actually does.

FLOP count. The models of teacher-student (5-100-100-5, tanh) and digits
(64-200-200-10, ReLU) are MLPs of ``nn.Linear`` layers; the layer sizes
n0..nL are read from the 2-D weight shapes in ``plan.layout.shapes`` (a model
that is not such a chain is refused). With S = sum_i n_i * n_{i+1} and N samples:
forward = 2*N*S flops per member; backward = weight gradients (2*N*S) plus
input gradients of every layer but the first (2*N*(S - n0*n1): the data need no
gradient, and neither engine computes it); so one gradient step costs
2*N*(3*S - n0*n1). A scan point adds, at the end, a train forward, a test
forward and one train gradient (for the reported gradient norm). Biases,
activations, the loss and the optimizer update are not counted (they are not
matrix work), so the figure is a slight underestimate of the work done.

Usage (from the repository root)::

    python benchmarks/performance.py                   # everything, default settings (see --help), CPU
    python benchmarks/performance.py --quick           # smoke run with tiny settings (< 1 min)
    python benchmarks/performance.py --only scan,flops --ks 32 --json perf.json
    python benchmarks/performance.py --device cuda     # the same on a GPU

Run it on an otherwise idle machine: when another process keeps a core busy,
torch's default threads (one per core) wait on each other and every figure
drops several-fold; ``--threads 1`` is then the steadier choice (``--quick``
uses it unless told otherwise). The full default run takes a few minutes on a
2-core CPU; each case is announced on stderr as it runs.

Sections: peak, scan, flops, sweep, scaling, memory, breakdown, targets (``--only``
runs what the chosen sections need: flops needs peak and the scan runs,
targets needs everything but scaling).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

from landscape.engine import fused, worker as loop
from landscape import metrics
from landscape.experiments import scan, train
from landscape.config.settings import ScanConfig, TrainConfig
from landscape.tasks import get_task

SECTIONS = ("peak", "scan", "flops", "sweep", "scaling", "memory", "breakdown", "targets", "wave2")
TASKS = {"teacher-student": {}, "digits": {"n_train": 1000}}
SHORT = {"teacher-student": "ts", "digits": "digits"}
ENSEMBLE_ENGINES = ("mlp", "vmap")  # mlp: what --engine auto runs on these MLP tasks

FULL = dict(ks="8,32,64", scaling_ks="1,2,4,8,16,32,64,128", ts_steps=100, digits_steps=30, loop_points=32,
            sweep_steps=1000, memory_k=128, memory_steps=10, peak_size=2048, peak_reps=10, transformer_steps=20,
            first_runs=3)
QUICK = dict(ks="2,4", scaling_ks="1,2,4,8", ts_steps=10, digits_steps=3, loop_points=4,
             sweep_steps=20, memory_k=16, memory_steps=2, peak_size=512, peak_reps=3, transformer_steps=2,
             first_runs=1)

# Targets of issue 6 (2-core CPU, float32).
TARGET_K = 32
TARGET_SCAN_RATIO = 15.0
TARGET_PEAK_FRACTION = 0.5
TARGET_SWEEP_SPEEDUP = 8.0
TARGET_MEMORY_K = 128
TARGET_MEMORY_MIB = 2048.0
# Targets of issue 16 (the two speed ratios again, with higher bars; the rest new)
WAVE2 = {"scan": 15.0, "sweep": 8.0, "passes": 10.0, "transformer_59": 4.0, "transformer_113": 0.5,
         "first_command_s": 6.0, "gpu_digits_pts": 150_000}


# --------------------------------------------------------------------------- cases (run in a child process)

def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def mlp_sizes(layout) -> list[int]:
    """Layer widths n0..nL of a chain of Linear layers, from the 2-D weight shapes ``(out, in)``."""
    weights = [s for s in layout.shapes if len(s) == 2]
    sizes = [weights[0][1]] + [w[0] for w in weights]
    if any(w[1] != n for w, n in zip(weights, sizes)):
        raise ValueError(f"the model is not a chain of Linear layers (weight shapes {weights}); "
                         "the FLOP count assumes an MLP")
    return sizes


def gradient_flop(sizes: list[int], n: int) -> int:
    """Matrix flops of one member's loss gradient on n samples: forward + weight grads + input grads (not layer 1)."""
    s = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2 * n * (3 * s - sizes[0] * sizes[1])


def forward_flop(sizes: list[int], n: int) -> int:
    return 2 * n * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def scan_flop(plan, points: int) -> int:
    """Matrix flops of a scan of ``points`` points: every step's gradient plus the final evaluation."""
    sizes, cfg, task = mlp_sizes(plan.layout), plan.config, plan.task
    n_step = min(cfg.batch_size or len(task.x_train), len(task.x_train))
    per_point = (cfg.steps * gradient_flop(sizes, n_step) + forward_flop(sizes, len(task.x_train))
                 + forward_flop(sizes, len(task.x_test)) + gradient_flop(sizes, len(task.x_train)))
    return points * per_point


def case_peak(spec: dict) -> dict:
    device, n = spec["device"], spec["n"]
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    for _ in range(2):
        torch.matmul(a, b)
    sync(device)
    times = []
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        times.append(time.perf_counter() - t0)
    flop = 2 * n ** 3
    return {"n": n, "reps": spec["reps"], "times": times, "seconds": sum(times), "gflops_best": flop / min(times) / 1e9,
            "gflops_median": flop / float(np.median(times)) / 1e9}


def scan_points(k: int, limit: int | None) -> np.ndarray:
    """All K points, or at most ``limit`` evenly spaced ones (small to large norms alike)."""
    if not limit or limit >= k:
        return np.arange(k)
    return np.unique(np.linspace(0, k - 1, limit).round().astype(np.int64))


def norm_grid(k: int) -> str:
    """K log-spaced norms from 0.1 to 10 w0 (the default scan's range); K = 1 is w0 itself."""
    return f"0.1:10:{k}:log" if k > 1 else "1"


def case_scan(spec: dict) -> dict:
    device, name = spec["device"], spec["task"]
    task = get_task(name, TASKS[name])
    cfg = ScanConfig(task=name, task_options=TASKS[name], norms=norm_grid(spec["k"]),
                     steps=spec["steps"], engine=spec["engine"], device=device)
    plan = scan.make_plan(cfg, task)
    points = scan_points(plan.n_points, spec.get("points"))
    chunk = scan.auto_chunk(plan) if spec.get("chunk") == "auto" else len(points)
    parts = loop.chunks(points, chunk)
    step = fused.Step(cfg.method, bool(spec.get("compiled")))  # compiled: the whole step (landscape.engine.whole_step)
    warm = scan.make_plan(dataclasses.replace(cfg, steps=2), task)
    for part in {len(p): p for p in parts}.values():  # every shape compiles before the clock starts
        scan.run_chunk(warm, part, device=device, engine=spec["engine"], step=step)
    sync(device)
    t0 = time.perf_counter()
    results = [scan.run_chunk(plan, part, device=device, engine=spec["engine"], step=step) for part in parts]
    sync(device)
    seconds = time.perf_counter() - t0
    res = scan.concat(results)
    return {"seconds": seconds, "points": len(points), "k": plan.n_points, "steps": cfg.steps,
            "chunk": chunk, "chunks": len(parts), "point_steps": len(points) * cfg.steps,
            "flop": scan_flop(plan, len(points)), "sizes": mlp_sizes(plan.layout),
            "index": res.index.tolist(), "train_loss": res.train_loss.tolist()}


def sweep_config(steps: int, device: str) -> TrainConfig:
    return TrainConfig(task="teacher-student", init_scale=[8.0], weight_decay=[0.03, 0.1, 0.3],
                       seeds=[0, 1, 2, 3], lr=0.003, steps=steps, device=device)


def train_group(plan, group, device, engine, compiled=False) -> np.ndarray:
    """Train ``group`` from scratch; the final logged train loss of each member."""
    logs = []
    train.run(plan, group, train.fresh_state(plan, group), device=device, engine=engine,
              on_checkpoint=lambda state, log: logs.append(log), step=fused.Step("adamw", compiled))
    last = [log for log in logs if len(log)][-1]
    return last.arrays()["train_loss"][:, -1]


def case_sweep(spec: dict) -> dict:
    """Seconds of the sweep, and of its logging alone (``metrics.evaluate`` at every logged step)."""
    device = spec["device"]
    task = get_task("teacher-student")
    plan = train.make_plan(sweep_config(spec["steps"], device), task)
    warm = train.make_plan(sweep_config(2, device), task)
    groups = [plan.members] if spec["mode"] == "ensemble" else [[m] for m in plan.members]
    compiled = bool(spec.get("compiled"))
    train_group(warm, groups[0], device, spec["engine"], compiled)
    evaluate, logging = metrics.evaluate, [0.0]

    def timed(*args, **kwargs):  # this process only: the case runs in its own child
        sync(device)
        t = time.perf_counter()
        out = evaluate(*args, **kwargs)
        sync(device)
        logging[0] += time.perf_counter() - t
        return out

    metrics.evaluate = timed
    sync(device)
    t0 = time.perf_counter()
    losses = np.concatenate([train_group(plan, g, device, spec["engine"], compiled) for g in groups])
    sync(device)
    return {"seconds": time.perf_counter() - t0, "logging_s": logging[0], "members": len(plan.members),
            "runs": len(groups), "steps": spec["steps"], "names": [m.name for m in plan.members],
            "train_loss": losses.tolist()}


def case_floor(spec: dict) -> dict:
    """Seconds of the batched matrix products alone of one full-batch gradient step of ``m`` members.

    The same products, shapes and orientations as the mlp kernel (``landscape.engine.mlp._bmm``):
    forward, weight gradients, and input gradients of every layer but the first,
    on random tensors; best of ``reps`` timed repetitions of ``inner`` steps.
    Nothing else (activations, loss, optimizer) is included: no engine can do a step faster.
    """
    from landscape.engine.mlp import _bmm

    device, m, sizes, n = spec["device"], spec["m"], spec["sizes"], spec["n"]
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device)

    weights = [rand(m, b, a) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rand(m, 1, b) for b in sizes[1:]]
    acts = [rand(n, sizes[0]).expand(m, n, sizes[0])] + [rand(m, n, b) for b in sizes[1:]]

    def step():
        for i, w in enumerate(weights):
            _bmm(acts[i], w.mT, biases[i])
        for i in reversed(range(len(weights))):
            _bmm(acts[i + 1].mT, acts[i])
            if i > 0:
                _bmm(acts[i + 1], weights[i])

    for _ in range(3):
        step()
    sync(device)
    best = float("inf")
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        for _ in range(spec["inner"]):
            step()
        sync(device)
        best = min(best, (time.perf_counter() - t0) / spec["inner"])
    return {"seconds": best, "m": m, "sizes": sizes, "n": n}


def case_breakdown(spec: dict) -> dict:
    """Where a step's time goes: the gradient and the optimizer update, timed apart inside the loop.

    ``kind="scan"``: teacher-student at K points with Riemannian Adam (the scan's
    step); ``kind="sweep"``: the sweep's 12 members with AdamW. Full batch, mlp kernel.
    """
    from landscape.engine import allocator as memory, optim
    from landscape.engine.ensemble import Ensemble

    device = spec["device"]
    memory.keep_freed_memory()  # as scan.run_chunk and train.run do
    if spec["what"] == "scan":
        plan = scan.make_plan(ScanConfig(norms=norm_grid(spec["k"]), device=device), get_task("teacher-student"))
        target, theta = scan.start(plan, np.arange(plan.n_points), device)
        update = lambda th, g, st: optim.riemannian_adam_step(th, g, st, 0.01, target, None)  # noqa: E731
    else:
        plan = train.make_plan(sweep_config(10, device), get_task("teacher-student"))
        theta = train.fresh_state(plan, plan.members).theta.to(device)
        wd = torch.tensor([m.weight_decay for m in plan.members], device=device)[:, None]
        update = lambda th, g, st: optim.adamw_step(th, g, st, 0.003, wd)  # noqa: E731
    ens = Ensemble(plan.task, plan.module.to(device), plan.layout, "mlp")
    x, y = plan.task.x_train.to(device), plan.task.y_train.to(device)
    state = optim.AdamState.zeros_like(theta)
    grad_s = opt_s = 0.0
    for t in range(spec["warm"] + spec["steps"]):
        t0 = time.perf_counter()
        g, _ = ens.grad(theta, x, y)
        sync(device)
        t1 = time.perf_counter()
        theta, state = update(theta, g, state)
        sync(device)
        if t >= spec["warm"]:
            grad_s, opt_s = grad_s + t1 - t0, opt_s + time.perf_counter() - t1
    return {"seconds": grad_s + opt_s, "grad_ms": 1e3 * grad_s / spec["steps"],
            "optimizer_ms": 1e3 * opt_s / spec["steps"], "members": theta.shape[0]}


CASES = {"peak": case_peak, "scan": case_scan, "sweep": case_sweep, "floor": case_floor,
         "breakdown": case_breakdown}


def run_case(spec: dict) -> dict:
    """Entry point of a child process: run one case and add its peak memory."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = CASES[spec["kind"]](spec)
    out["baseline_mib"] = baseline  # the process before the case: Python, torch, landscape, sklearn
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out["threads"] = torch.get_num_threads()
    if spec["device"].startswith("cuda"):
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


# --------------------------------------------------------------------------- the parent: cases, tables

class Runner:
    """Runs each distinct case once, in a fresh child process, and remembers the result."""

    def __init__(self, args):
        self.args = args
        self.results: dict[str, dict] = {}
        self.ctx = multiprocessing.get_context("forkserver")
        # torch._dynamo: the first gradient under torch.func imports it (~2 s), once per process otherwise.
        self.ctx.set_forkserver_preload(["torch", "torch._dynamo", "numpy", "landscape.experiments.scan", "landscape.experiments.train",
                                         "sklearn.datasets"])

    def case(self, name: str, **spec) -> dict:
        spec.update(device=self.args.device, threads=self.args.threads)
        key = json.dumps(spec, sort_keys=True)
        if key not in self.results:
            sys.stdout.flush()
            print(f"  running {name} ...", end="", flush=True, file=sys.stderr)
            with self.ctx.Pool(1) as pool:
                out = pool.apply(run_case, (spec,))
            print(f" {out['seconds']:.2f} s", file=sys.stderr)
            self.results[key] = {"name": name, "spec": spec, **out}
        return self.results[key]

    def peak(self):
        a = self.args
        return self.case("matmul peak", kind="peak", n=a.peak_size, reps=a.peak_reps)

    def scan(self, task, k, engine, points=None, chunk=None, steps=None, compiled=False):
        steps = steps or self.steps(task)
        label = f"scan {SHORT[task]} K={k} {engine}" + (" compiled" if compiled else "")
        if points and points < k:
            label += f" ({points} pts)"
        if chunk:
            label += " auto-chunk"
        return self.case(label, kind="scan", task=task, k=k, engine=engine, steps=steps,
                         points=points if points and points < k else None, chunk=chunk, compiled=compiled)

    def sweep(self, mode, engine="mlp", compiled=False):
        return self.case(f"sweep {mode} {engine}" + (" compiled" if compiled else ""), kind="sweep", mode=mode,
                         engine=engine, steps=self.args.sweep_steps, compiled=compiled)

    def floor(self, task, m):
        """The matrix-product floor of one gradient step of ``m`` members of ``task`` (full batch)."""
        sizes = {"teacher-student": [5, 100, 100, 5], "digits": [64, 200, 200, 10]}[task]
        n = len(get_task(task, TASKS[task]).x_train)
        return self.case(f"matmul floor {SHORT[task]} M={m}", kind="floor", m=m, sizes=sizes, n=n, reps=9,
                         inner=max(5, 600 // m))

    def breakdown(self, what, k=None):
        label = f"breakdown {what}" + (f" ts K={k}" if k else "")
        return self.case(label, kind="breakdown", what=what, k=k, warm=20, steps=200)

    def steps(self, task):
        return self.args.ts_steps if task == "teacher-student" else self.args.digits_steps


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def heading(title: str) -> None:
    print(f"\n== {title}")


def rel_diff(a, b) -> tuple[float, int]:
    """Largest |a-b|/|b| over points where both are finite, and the count of points where either is not."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan"), int((~ok).sum())
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-30))), int((~ok).sum())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(args) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "threads": args.threads or torch.get_num_threads(), "device": args.device}
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
        info["tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def section_peak(run: Runner, report: dict) -> None:
    heading("1. machine: float32 matmul peak")
    info, p = report["machine"], run.peak()
    print(f"torch {info['torch']}, {info['threads']} threads, CPU {info['cpu']} ({info['cores']} cores), "
          f"device {info['device']}" + (f" ({info['gpu']}, tf32 {info['tf32']})" if "gpu" in info else ""))
    print(f"torch.matmul {p['n']}x{p['n']} float32, {p['reps']} reps after 2 warm-up: "
          f"best {p['gflops_best']:.1f} GFLOP/s, median {p['gflops_median']:.1f} GFLOP/s (peak = best)")
    report["peak"] = {k: p[k] for k in ("n", "reps", "gflops_best", "gflops_median", "times", "maxrss_mib")}


def scan_pair(run: Runner, task: str, k: int, engine: str = "mlp", compiled: bool = False) -> dict:
    """One ensemble engine (``compiled``: its whole step) against the loop engine on the same points."""
    v = run.scan(task, k, engine, compiled=compiled)
    lp = run.scan(task, k, "loop", points=run.args.loop_points)
    sel = {i: j for j, i in enumerate(v["index"])}
    diff, bad = rel_diff([v["train_loss"][sel[i]] for i in lp["index"]], lp["train_loss"])
    t_v, t_l = v["seconds"] / v["point_steps"], lp["seconds"] / lp["point_steps"]
    return {"task": task, "k": k, "engine": engine, "steps": v["steps"], "ensemble_s": v["seconds"],
            "ensemble_pts_per_s": 1 / t_v, "loop_points": lp["points"], "loop_s": lp["seconds"],
            "loop_pts_per_s": 1 / t_l, "ratio": t_l / t_v, "max_rel_diff": diff, "nonfinite": bad}


def section_scan(run: Runner, report: dict) -> None:
    heading("2. scan: ensemble engines (mlp, vmap) vs loop engine (same config and seeds, R = 1, full batch)")
    rows, out = [], []
    for task in TASKS:
        for k in run.args.ks:
            for engine in ENSEMBLE_ENGINES:
                r = scan_pair(run, task, k, engine)
                out.append(r)
                rows.append([SHORT[task], k, engine, r["steps"], f"{r['ensemble_s']:.2f}",
                             f"{r['ensemble_pts_per_s']:.0f}", f"{r['loop_points']}/{k}", f"{r['loop_s']:.2f}",
                             f"{r['loop_pts_per_s']:.0f}", f"{r['ratio']:.1f}x",
                             f"{r['max_rel_diff']:.1e}" + (f" ({r['nonfinite']} nan)" if r["nonfinite"] else "")])
    print(table(["task", "K", "engine", "steps", "s", "pt-steps/s", "loop pts", "loop s", "loop pt-steps/s",
                 "loop/engine", "max rel diff"], rows))
    print(f"norms 0.1:10:K:log x w0; loop engine on at most {run.args.loop_points} evenly spaced points per K "
          "(its time per point-step does not depend on K); ratio = loop s per point-step / engine s per point-step;\n"
          "max rel diff = largest |engine - loop| / |loop| of the final train loss over the loop's points. "
          "mlp is what --engine auto runs on these tasks.")
    report["scan"] = out


def flop_row(c: dict, peak: float) -> dict:
    gflops = c["flop"] / c["seconds"] / 1e9
    return {"case": c["name"], "sizes": c["sizes"], "gflop": c["flop"] / 1e9, "seconds": c["seconds"],
            "gflops": gflops, "fraction_of_peak": gflops / peak}


def section_flops(run: Runner, report: dict) -> None:
    heading("3. achieved GFLOP/s of the scan (analytic count of the matrix work)")
    peak = run.peak()["gflops_best"]
    rows, out = [], []
    for task in TASKS:
        for k in run.args.ks:
            cases = [run.scan(task, k, e) for e in ENSEMBLE_ENGINES]
            for c in cases + [run.scan(task, k, "loop", points=run.args.loop_points)]:
                r = flop_row(c, peak)
                out.append(r)
                rows.append([r["case"], "-".join(map(str, r["sizes"])), f"{r['gflop']:.2f}", f"{r['seconds']:.2f}",
                             f"{r['gflops']:.1f}", f"{100 * r['fraction_of_peak']:.0f}%"])
    print(table(["case", "MLP", "GFLOP", "s", "GFLOP/s", "of peak"], rows))
    print(f"peak = {peak:.1f} GFLOP/s (section 1). Per gradient: 2N(3S - n0 n1) with S = sum n_i n_i+1 "
          "(forward, weight grads, input grads but the first layer's); plus the final train forward, test forward "
          "and train gradient.")
    report["flops"] = {"peak_gflops": peak, "rows": out}


def section_sweep(run: Runner, report: dict) -> None:
    heading("4. training sweep: 12 members as one ensemble vs 12 separate runs")
    e = run.sweep("ensemble")
    rows, out = [], {}
    work = e["members"] * e["steps"]
    rows.append(["one ensemble (mlp)", e["runs"], e["members"], e["steps"], f"{e['seconds']:.2f}",
                 f"{work / e['seconds']:.0f}", "1.0x", "-"])
    for engine, label in (("loop", "separate runs, loop (reference)"), ("mlp", "separate runs, mlp engine")):
        s = run.sweep("separate", engine)
        diff, bad = rel_diff(e["train_loss"], s["train_loss"])
        speedup = s["seconds"] / e["seconds"]
        rows.append([label, s["runs"], s["members"], s["steps"], f"{s['seconds']:.2f}", f"{work / s['seconds']:.0f}",
                     f"{speedup:.1f}x", f"{diff:.1e}" + (f" ({bad} nan)" if bad else "")])
        out[engine] = {"separate_s": s["seconds"], "speedup": speedup, "max_rel_diff": diff, "nonfinite": bad}
    print(table(["mode", "runs", "members", "steps", "s", "member-steps/s", "speed-up of the ensemble",
                 "max rel diff"], rows))
    print("teacher-student, init scale 8, lr 0.003, weight decay 0.03,0.1,0.3 x seeds 0-3, full batch, with logging. "
          "Separate runs train one member at a time: with the loop engine (plain autograd on the nn.Module, "
          "as a training script does; the target's reference) or with the mlp engine on an ensemble of one. "
          "max rel diff: final logged train loss against the ensemble.")
    report["sweep"] = {"ensemble_s": e["seconds"], "members": e["members"], "steps": e["steps"], "separate": out}


def section_scaling(run: Runner, report: dict) -> None:
    heading("5. scaling: mlp-engine scan, one chunk of K points")
    peak = run.peak()["gflops_best"] if "peak" in run.args.needed else None
    rows, out = [], []
    for task in TASKS:
        for k in run.args.scaling_ks:
            c = run.scan(task, k, "mlp")
            gflops = c["flop"] / c["seconds"] / 1e9
            r = {"task": task, "k": k, "steps": c["steps"], "seconds": c["seconds"],
                 "ms_per_step": 1e3 * c["seconds"] / c["steps"], "pts_per_s": c["point_steps"] / c["seconds"],
                 "gflops": gflops, "fraction_of_peak": gflops / peak if peak else None, "maxrss_mib": c["maxrss_mib"]}
            out.append(r)
            rows.append([SHORT[task], k, r["steps"], f"{r['seconds']:.2f}", f"{r['ms_per_step']:.2f}",
                         f"{r['pts_per_s']:.0f}", f"{gflops:.1f}", f"{100 * r['fraction_of_peak']:.0f}%" if peak else "-",
                         f"{r['maxrss_mib']:.0f}"])
    print(table(["task", "K", "steps", "s", "ms/step", "pt-steps/s", "GFLOP/s", "of peak", "RSS MiB"], rows))
    print("ms/step includes the final evaluation spread over the steps. Overhead-bound: ms/step flat in K, "
          "pt-steps/s grows ~K; compute-bound: ms/step grows ~K, pt-steps/s flat.")
    report["scaling"] = out


def memory_case(run: Runner) -> dict:
    return run.scan("digits", run.args.memory_k, "mlp", chunk="auto", steps=run.args.memory_steps)


def section_memory(run: Runner, report: dict) -> None:
    heading("6. peak resident memory of each case (ru_maxrss of its own process)")
    m = memory_case(run)
    cuda = run.args.device.startswith("cuda")
    rows = []
    for c in run.results.values():
        rows.append([c["name"], f"{c['seconds']:.2f}", f"{c['maxrss_mib']:.0f}"]
                    + ([f"{c['cuda_max_allocated_mib']:.0f}"] if cuda else []))
    print(table(["case", "s", "peak RSS MiB"] + (["CUDA max alloc MiB"] if cuda else []), rows))
    print(f"digits K={m['k']} with automatic chunking: scan.auto_chunk(plan) = {m['chunk']} points "
          f"-> {m['chunks']} chunk(s), {m['steps']} steps, {m['seconds']:.2f} s, peak RSS {m['maxrss_mib']:.0f} MiB, "
          f"of which {m['baseline_mib']:.0f} MiB is the process before the case (Python, torch, landscape, sklearn).")
    report["memory"] = {"cases": [{"case": c["name"], "maxrss_mib": c["maxrss_mib"],
                                   **({"cuda_max_allocated_mib": c["cuda_max_allocated_mib"]} if cuda else {})}
                                  for c in run.results.values()],
                        "auto_chunk": {"k": m["k"], "chunk": m["chunk"], "chunks": m["chunks"],
                                       "maxrss_mib": m["maxrss_mib"], "seconds": m["seconds"]}}


def section_breakdown(run: Runner, report: dict) -> None:
    heading("7. breakdown of a step (teacher-student, mlp kernel, full batch)")
    rows, out = [], []
    k = target_k(run.args.ks)
    for what, m in (("scan", k), ("sweep", None)):
        b = run.breakdown(what, m)
        f = run.floor("teacher-student", b["members"])["seconds"] * 1e3
        step = b["grad_ms"] + b["optimizer_ms"]
        r = {"what": what, "members": b["members"], "grad_ms": b["grad_ms"], "optimizer_ms": b["optimizer_ms"],
             "step_ms": step, "matmul_floor_ms": f, "elementwise_ms": step - f}
        out.append(r)
        rows.append([f"{what} ({'Riemannian Adam' if what == 'scan' else 'AdamW'})", b["members"],
                     f"{b['grad_ms']:.2f}", f"{b['optimizer_ms']:.2f}", f"{step:.2f}", f"{f:.2f}",
                     f"{100 * (step - f) / step:.0f}%"])
    print(table(["step", "members", "gradient ms", "optimizer ms", "step ms", "matmul floor ms",
                 "not matrix products"], rows))
    print("timed inside a loop of 200 steps after 20; matmul floor: the gradient's batched matrix products alone "
          "(case 'matmul floor'). The rest is elementwise passes over memory: activations, loss, bias sums, the update.")
    report["breakdown"] = out


def sweep_bound(run: Runner, ensemble: dict, separate: dict) -> float:
    """The sweep's speed-up if the ensemble's steps cost only their matrix products and its logging what it
    cost in ``ensemble`` (the logging is per member work too: a ridge probe's float64 Cholesky, two forward passes)."""
    floor = run.floor("teacher-student", ensemble["members"])["seconds"]
    return separate["seconds"] / (ensemble["steps"] * floor + ensemble["logging_s"])


def target_k(ks: list[int]) -> int:
    return TARGET_K if TARGET_K in ks else max(ks)


def section_targets(run: Runner, report: dict) -> None:
    heading("8. targets (issue 6; 2-core CPU, float32)")
    a, rows, out = run.args, [], []

    def add(what, value, shown, need, ok, bound="-"):
        out.append({"target": what, "value": value, "required": need, "pass": bool(ok), "bound": bound})
        rows.append([what, shown, need, "PASS" if ok else "FAIL", bound])

    k = target_k(a.ks)
    r = scan_pair(run, "teacher-student", k)
    floor = run.floor("teacher-student", k)["seconds"]
    best = k / r["loop_pts_per_s"] / floor
    add(f"teacher-student scan K={k}: loop/mlp per point-step", r["ratio"], f"{r['ratio']:.1f}x",
        f">= {TARGET_SCAN_RATIO:g}x", r["ratio"] >= TARGET_SCAN_RATIO, f"{best:.1f}x")
    f = flop_row(run.scan("digits", k, "mlp"), run.peak()["gflops_best"])
    add(f"digits scan K={k} full batch: fraction of matmul peak", f["fraction_of_peak"],
        f"{100 * f['fraction_of_peak']:.0f}% ({f['gflops']:.1f} GFLOP/s)", f">= {100 * TARGET_PEAK_FRACTION:.0f}%",
        f["fraction_of_peak"] >= TARGET_PEAK_FRACTION)
    e, s = run.sweep("ensemble"), run.sweep("separate", "loop")
    sp = s["seconds"] / e["seconds"]
    best = sweep_bound(run, e, s)
    add("12-member sweep: 12 separate loop runs / one ensemble", sp, f"{sp:.1f}x", f">= {TARGET_SWEEP_SPEEDUP:g}x",
        sp >= TARGET_SWEEP_SPEEDUP, f"{best:.1f}x")
    m = memory_case(run)
    add(f"digits scan K={m['k']} auto chunk ({m['chunk']}): peak RSS", m["maxrss_mib"], f"{m['maxrss_mib']:.0f} MiB",
        f"<= {TARGET_MEMORY_MIB:.0f} MiB", m["maxrss_mib"] <= TARGET_MEMORY_MIB)
    print(table(["target", "measured", "required", "", "bound"], rows))
    print("bound: the ratio if a step of the ensemble cost only its batched matrix products (the same shapes and "
          "orientations as the mlp kernel, timed alone: 'matmul floor' cases), against the measured loop time; "
          "no engine that computes these products one step at a time can do better on this machine. For the "
          "sweep, the ensemble's logging is added as measured in its run (its metrics at every logged step).")
    if k != TARGET_K or m["k"] != TARGET_MEMORY_K or a.quick:
        print(f"note: not the target settings (K={k}, memory K={m['k']}, quick={a.quick}); the verdicts are indicative only.")
    report["targets"] = out


def first_command(runs: int) -> float:
    """Median wall seconds of the README's first command (``landscape scan --out FILE``), fresh processes."""
    import statistics
    import subprocess
    import tempfile

    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "landscape", "scan", "--quiet", "--out", f"{d}/scan.h5"], check=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def section_wave2(run: Runner, report: dict) -> None:
    import compile_step
    import transformer as tb

    heading("9. targets (issue 16; float32)")
    a, rows, out = run.args, [], []

    def add(what, value, shown, need, ok, bound=None):
        out.append({"target": what, "value": value, "required": need, "pass": None if ok is None else bool(ok),
                    "bound": bound})
        rows.append([what, shown, need, "-" if ok is None else "PASS" if ok else "FAIL",
                     "-" if bound is None else f"{bound:.1f}x"])

    k = target_k(a.ks)
    r = scan_pair(run, "teacher-student", k)
    scan_bound = k / r["loop_pts_per_s"] / run.floor("teacher-student", k)["seconds"]
    add(f"teacher-student scan K={k}, default engine / loop, per point-step", r["ratio"], f"{r['ratio']:.1f}x",
        f">= {WAVE2['scan']:g}x", r["ratio"] >= WAVE2["scan"], scan_bound)
    e, s = run.sweep("ensemble"), run.sweep("separate", "loop")
    sp = s["seconds"] / e["seconds"]
    bound = sweep_bound(run, e, s)
    add("12-member sweep / 12 separate loop runs", sp, f"{sp:.1f}x", f">= {WAVE2['sweep']:g}x", sp >= WAVE2["sweep"],
        bound)
    why = fused.unavailable(a.device)
    if why is None:  # the whole step compiled (landscape.engine.whole_step): --compile on, or auto on long runs
        r = scan_pair(run, "teacher-student", k, compiled=True)
        add(f"  the same scan, whole step compiled / loop", r["ratio"], f"{r['ratio']:.1f}x", f">= {WAVE2['scan']:g}x",
            r["ratio"] >= WAVE2["scan"], scan_bound)
        c = run.sweep("ensemble", compiled=True)
        sp = s["seconds"] / c["seconds"]
        add("  the same sweep, whole step compiled / loop runs", sp, f"{sp:.1f}x", f">= {WAVE2['sweep']:g}x",
            sp >= WAVE2["sweep"], sweep_bound(run, c, s))
        steps = compile_step.step_alone(32, 11205, 100, a.device)
        passes = steps["riemannian"][True] / steps["pass"]
        add("Riemannian Adam step alone, [32, 11205], fused (--compile)", passes,
            f"{steps['riemannian'][True] * 1e3:.3f} ms = {passes:.1f} passes (eager {steps['riemannian'][False] / steps['pass']:.1f})",
            f"<= {WAVE2['passes']:g} passes", passes <= WAVE2["passes"])
    else:
        add("Riemannian Adam step alone, [32, 11205], fused", None, f"not measured: {why}", "<= 10 passes", None)
    n = a.transformer_steps
    ens = tb.timed_run(tb.config(59, n, "vmap", a.device), one_at_a_time=False)
    one = tb.timed_run(tb.config(59, n, "loop", a.device), one_at_a_time=True)
    at_peak = 8 * n * tb.member_flop(59) / 1e9 / run.peak()["gflops_best"]  # the ensemble's products at the peak
    add("transformer p=59, 8-member ensemble / 8 loop runs, per member-step", one / ens, f"{one / ens:.2f}x",
        f">= {WAVE2['transformer_59']:g}x", one / ens >= WAVE2["transformer_59"], one / at_peak)
    flop, sec = 8 * tb.member_flop(113), tb.ensemble_step(113, max(1, n // 7), a.device)
    share = flop / sec / 1e9 / run.peak()["gflops_best"]
    add("transformer p=113, 8 members: share of the matmul peak", share, f"{share:.0%}",
        f">= {WAVE2['transformer_113']:.0%}", share >= WAVE2["transformer_113"])
    first = first_command(a.first_runs)
    add("README's first command (landscape scan), end to end", first, f"{first:.1f} s (median of {a.first_runs})",
        f"no slower than {WAVE2['first_command_s']:g} s", first <= WAVE2["first_command_s"])
    if a.device.startswith("cuda"):
        c = run.scan("digits", 128, "mlp")
        pts = c["point_steps"] / c["seconds"]
        add("GPU: digits scan K=128, point-steps/s", pts, f"{pts:,.0f}", f">= {WAVE2['gpu_digits_pts']:,}",
            pts >= WAVE2["gpu_digits_pts"])
    print(table(["target", "measured", "required", "", "bound"], rows))
    print("bound: the ratio if a step of the ensemble cost only its matrix products, against the measured loop "
          "time: for the MLP rows the mlp kernel's batched products timed alone ('matmul floor' cases, section 8), "
          "for the transformer its products (FlopCounterMode) at the machine's matmul peak (section 1); for the "
          "sweeps, plus the ensemble's logging as measured in that run. A target above its bound cannot be met on "
          "this machine by any engine that computes these products (and logs as fast as that run did).")
    report["wave2"] = out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="defaults (full / --quick): " + ", ".join(
                                    f"{k.replace('_', '-')} {FULL[k]} / {QUICK[k]}" for k in FULL))
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke run (under a minute; 1 thread unless --threads)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of sections: {','.join(SECTIONS)}")
    p.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    p.add_argument("--threads", type=int, default=0, help="torch threads in each case (default: torch's default)")
    p.add_argument("--ks", help="K for the vmap-vs-loop comparison (and the targets' K=32)")
    p.add_argument("--scaling-ks", help="K for the scaling table")
    p.add_argument("--ts-steps", type=int, help="scan steps on teacher-student")
    p.add_argument("--digits-steps", type=int, help="scan steps on digits")
    p.add_argument("--loop-points", type=int, help="run the loop engine on at most this many points per K (0: all)")
    p.add_argument("--sweep-steps", type=int, help="training steps of the sweep")
    p.add_argument("--memory-k", type=int, help="K of the automatically chunked digits scan (memory target)")
    p.add_argument("--memory-steps", type=int, help="steps of that scan")
    p.add_argument("--peak-size", type=int, help="matrix size for the matmul peak")
    p.add_argument("--peak-reps", type=int, help="timed matmul repetitions")
    p.add_argument("--transformer-steps", type=int, help="training steps of the transformer runs (wave2)")
    p.add_argument("--first-runs", type=int, help="fresh runs of the README's first command (wave2)")
    args = p.parse_args(argv)
    if args.quick and not args.threads:
        args.threads = 1  # a smoke run stays fast when another process shares the cores
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.ks = [int(k) for k in str(args.ks).split(",")]
    args.scaling_ks = [int(k) for k in str(args.scaling_ks).split(",")]
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    needed = set(args.sections)
    if needed & {"flops", "targets", "wave2"}:
        needed.add("peak")
    args.needed = needed
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    run = Runner(args)
    report = {"machine": machine(args), "settings": {k: v for k, v in vars(args).items() if k != "needed"}}
    print(f"landscape performance, device {args.device}" + (" (quick settings)" if args.quick else ""))
    funcs = {"peak": section_peak, "scan": section_scan, "flops": section_flops, "sweep": section_sweep,
             "scaling": section_scaling, "memory": section_memory, "breakdown": section_breakdown,
             "targets": section_targets, "wave2": section_wave2}
    for name in SECTIONS:
        if name in args.sections or (name == "peak" and "peak" in args.needed):
            funcs[name](run, report)
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    report["total_seconds"] = total
    report["cases"] = list(run.results.values())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``--curvature 5`` costs a scan, and the batched spectrum against PyHessian's one model at a time.

    python benchmarks/curvature.py [--threads 2] [--repeats 3] [--modular-norms 0.25:4:3:log] [--points 32]
                                   [--opt-steps 200] [--only teacher|modular] [--part 1|2] [--profile]

Both parts run on two tasks, the presets ``data/teacher-student.toml`` (a 5-100-100-5 MLP regression, mlp engine)
and ``data/modular.toml`` (the token MLP on addition mod 59, vmap engine), with ``--curvature 5``: the top five
eigenvalues, the smallest and the trace of the Riemannian Hessian of the training loss, from the default Lanczos
iterations (max(30, 3K) = 30) and 10 Hutchinson probes, at every point, in one process with
``torch.set_num_threads(--threads)``.

1. share   the scan with and without ``--curvature 5`` through the public functions, as ``landscape scan`` runs it
           (``scan.make_plan``, chunks of ``scan.auto_chunk``, the optimizer step of ``scan.stepper``,
           ``scan.run_chunk``), alternately ``--repeats`` times each after a short warm-up run (medians). Inside
           each run with curvature, the curvature pass itself (``scan._curvature``, wrapped with a timer in this
           process only) is timed too, so the share is printed two ways: paired, (with - without) / without from
           the separate runs, and within a run, pass / (run - pass), which the run-to-run noise of a shared
           machine does not reach. Target: < 0.30. The first curvature pass of a process also pays torch.func's
           one-time set-up (about a second); it is printed apart (it is the first task's warm-up run: the second
           task's finds it paid). Teacher-student runs its preset (17 norms x 1 restart, 1000 steps). The modular
           preset (9 norms x 2 restarts, 2000 steps) takes about 3 minutes a scan on 2 cores, so it runs by
           default on 3 of its norms (``--modular-norms 0.25:4:3:log``: 6 points, still 2000 steps) with
           ``--modular-repeats 1``; both costs are per point, so the share does not depend on the number of norms.
           ``--modular-norms 0.25:4:9:log`` runs the preset's own grid.
2. speed   ``--points`` (32) real parameter vectors on their spheres: the preset's norm range at
           ceil(32 / restarts) norms, each point optimized ``--opt-steps`` (200) steps by ``scan.run_chunk``
           (``save_params``). On all of them, the same spectrum two ways, alternately ``--repeats`` times (medians,
           after a warm-up of each): *per model*, PyHessian's approach written out here (amirgholami/PyHessian,
           ``pyhessian/hessian.py``): one model at a time, its parameters loaded into the ``nn.Module``,
           ``torch.autograd.grad(loss, params, create_graph=True)``, then each Hessian-vector product
           ``torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)`` on lists of parameter
           tensors, a Python loop over Lanczos iterations (full reorthogonalization, Gram-Schmidt against every
           earlier vector) and over Hutchinson probes, with the tangent projection and curvature term applied so
           that it computes the Riemannian Hessian too; *batched*, ``curvature.measure`` on all points at once
           through ``Ensemble.hvp`` (vmap engine: one ``jvp`` of ``grad``, vmapped over points and vectors, per
           iteration), its gradient included. Both start Lanczos from the same tangent vector and use the same
           Rademacher probes (``curvature.rademacher`` of each point's seed), so they compute the same numbers up
           to float32 rounding: the script prints the largest relative difference of the top eigenvalues (and of
           the trace) and the speed-up, per-model time / batched time.

``--profile`` adds, per task, torch.profiler's table of one batched curvature pass over the scan's points (the
operators that dominate its time). No timed assertions: the script prints what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from landscape.config.settings import ScanConfig, resolve
from landscape.engine import curvature, sphere
from landscape.engine.layout import load_flat
from landscape.engine.worker import Worker, chunks, derived_seed
from landscape.experiments import scan
from landscape.tasks import get_task
from landscape.tasks.contract import adapted

DATA = Path(__file__).resolve().parents[1] / "data"
TASKS = {"teacher-student": DATA / "teacher-student.toml", "modular": DATA / "modular.toml"}
K, SAMPLES, TARGET = 5, 10, 0.30


# ---------------------------------------------------------------------------------------------------- part 1: share

@contextlib.contextmanager
def pass_timer():
    """Time every call of ``scan._curvature`` (the curvature pass of a chunk) in this process; yields the list of
    seconds, one per call. The module's function is put back on exit."""
    spent: list[float] = []
    original = scan._curvature

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    scan._curvature = timed
    try:
        yield spent
    finally:
        scan._curvature = original


def config(preset: Path, curv: int, norms: str | None = None, steps: int | None = None, **more) -> ScanConfig:
    flags = {"curvature": curv or None, "norms": norms, "steps": steps, **more}
    return resolve(ScanConfig, preset, flags)


def run_scan(cfg: ScanConfig) -> tuple[float, float, scan.Plan, int]:
    """``(seconds of the whole scan, seconds of its curvature passes, plan, chunk size)``, run the way
    ``landscape scan`` runs it (less the file): plan, chunks of ``auto_chunk``, the CLI's optimizer step."""
    task = get_task(cfg.task, cfg.task_options)
    with pass_timer() as spent:
        t0 = time.perf_counter()
        plan = scan.make_plan(cfg, task)
        size = cfg.chunk or scan.auto_chunk(plan)
        step = scan.stepper(plan, size=size)
        for chunk in chunks(np.arange(plan.n_points), size):
            scan.run_chunk(plan, chunk, step=step)
        total = time.perf_counter() - t0
    return total, sum(spent), plan, size


def share(name: str, preset: Path, norms: str | None, steps: int | None, repeats: int, profile: bool) -> None:
    plain, curved = config(preset, 0, norms, steps), config(preset, K, norms, steps)
    # warm-up: a short run with curvature on the same points pays the one-time costs (the first torch.func
    # Hessian-vector product of the process, the allocator's first pages) before anything is timed
    _, cold, _, _ = run_scan(config(preset, K, norms, min(10, curved.steps)))
    without, with_, passes, within = [], [], [], []
    for _ in range(repeats):
        without.append(run_scan(plain)[0])
        total, spent, plan, size = run_scan(curved)
        with_.append(total)
        passes.append(spent)
        within.append(spent / (total - spent))
    a, b = statistics.median(without), statistics.median(with_)
    r = plan.config.restarts
    print(f"{name} ({preset.relative_to(DATA.parent)}): {plan.n_points} points ({len(plan.norm)} norms x {r} "
          f"restart{'s' if r > 1 else ''}, norms {plan.config.norms}), {plan.config.steps} steps, "
          f"{plan.layout.size} parameters, engine {plan.config.engine}, chunk {size}; --curvature {K}: "
          f"{plan.lanczos} Lanczos iterations + {plan.config.curvature_samples} probes per point")
    n = f"median of {repeats}"
    print(f"  scan without --curvature   {a:8.2f} s  ({n}: {', '.join(f'{t:.2f}' for t in without)})")
    print(f"  scan with --curvature {K}    {b:8.2f} s  ({n}: {', '.join(f'{t:.2f}' for t in with_)}), "
          f"of which the curvature pass {statistics.median(passes):.2f} s "
          f"({1e3 * statistics.median(passes) / plan.n_points:.1f} ms per point)")
    print(f"  share, paired runs:        (with - without) / without = {(b - a) / a:6.3f}   (target < {TARGET:.2f})")
    print(f"  share, within each run:    pass / (run - pass)        = {statistics.median(within):6.3f}   "
          f"({n}: {', '.join(f'{s:.3f}' for s in within)}; target < {TARGET:.2f})")
    print(f"  first curvature pass of the warm-up run: {cold:.2f} s (the process's first pass includes torch.func's "
          f"one-time set-up; a scan pays it once)")
    if profile:
        profile_pass(plan)


def profile_pass(plan: scan.Plan) -> None:
    """torch.profiler's table of one batched curvature pass over the plan's starting points (warm)."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    index = np.arange(plan.n_points)
    worker = Worker(plan.task, plan.module, plan.layout, plan.config.engine)
    _, theta = scan.start(plan, index)
    grad = worker.grad(theta)[0]
    finite = torch.ones(len(index), dtype=torch.bool)
    scan._curvature(plan, worker, index, theta, grad, finite)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        scan._curvature(plan, worker, index, theta, grad, finite)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


# ----------------------------------------------------------------------------- part 2: batched against per model

def points(preset: Path, n: int, opt_steps: int) -> tuple[scan.Plan, np.ndarray, torch.Tensor]:
    """``n`` real parameter vectors on their spheres: the preset's norm range at ceil(n / restarts) norms (a
    START:STOP:NUM[:log] grid), each point optimized ``opt_steps`` steps. ``(plan, index, theta [n, P])``."""
    spec = config(preset, K).norms
    parts = spec.split(":")
    if len(parts) < 3:
        raise SystemExit(f"{preset}: norms {spec!r} is not a START:STOP:NUM[:log] grid")
    restarts = config(preset, K).restarts
    parts[2] = str(math.ceil(n / restarts))
    cfg = config(preset, K, ":".join(parts), opt_steps, save_params=True)
    plan = scan.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    index = np.arange(n)
    result = scan.run_chunk(plan, index, step=scan.stepper(plan))
    return plan, index, torch.as_tensor(result.params, dtype=torch.float32)


def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def add(a: list[torch.Tensor], b: list[torch.Tensor], s) -> list[torch.Tensor]:
    """``a + s b``, parameter by parameter."""
    return [x + s * y for x, y in zip(a, b)]


class PerModel:
    """PyHessian's approach, one model at a time: the model's own ``nn.Module``, its gradient kept with its graph
    (``create_graph=True``), a Hessian-vector product per vector by a second ``torch.autograd.grad`` through it,
    vectors as lists of per-parameter tensors, and Python loops over Lanczos iterations and Hutchinson probes
    (written here from the method, not PyHessian's code). On the sphere of the constrained parameters: the
    Riemannian Hessian ``P H P u - (<g, theta_c> / |theta_c|^2) P_c u``, as ``curvature.riemannian``."""

    def __init__(self, plan: scan.Plan, x, y):
        self.task, self.layout, self.x, self.y = plan.task, plan.layout, x, y
        if plan.layout.n_groups > 1:
            raise SystemExit("the per-model reference handles one sphere")
        self.model = copy.deepcopy(plan.module)
        named = dict(self.model.named_parameters())
        self.params = [named[n] for n in plan.layout.names]
        self.on = plan.layout.constrained  # per parameter: on the sphere or free

    def spectrum(self, flat: torch.Tensor, seed: int, k: int, samples: int, steps: int):
        """``(top k eigenvalues descending, smallest, trace)`` of the Riemannian Hessian at ``flat [P]``."""
        load_flat(self.model, self.layout, flat)
        loss = self.task.member_loss(adapted(self.task, self.model(self.x)), self.y)
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        theta = [p.detach() if on else torch.zeros_like(p) for p, on in zip(self.params, self.on)]  # theta_c
        r2 = dot(theta, theta)
        c = dot([g.detach() for g in grads], theta) / r2

        def split(row: torch.Tensor) -> list[torch.Tensor]:
            return [v.reshape(p.shape) for v, p in zip(row.split(self.layout.numels), self.params)]

        def tangent(v):
            return add(v, theta, -dot(v, theta) / r2)

        def op(v):
            u = tangent(v)
            hu = torch.autograd.grad(grads, self.params, grad_outputs=u, retain_graph=True)
            return [h - c * w if on else h for h, w, on in zip(tangent(list(hu)), u, self.on)]

        draws = curvature.rademacher(seed, samples + 1, self.layout.size)  # as curvature.measure draws them
        # Lanczos with full reorthogonalization
        v = tangent(split(draws[0]))
        v = [t / dot(v, v).sqrt() for t in v]
        basis, alphas, betas = [v], [], []
        for j in range(steps):
            w = op(basis[j])
            alphas.append(dot(w, basis[j]).item())
            w = add(w, basis[j], -alphas[j])
            if j:
                w = add(w, basis[j - 1], -betas[j - 1])
            for q in basis:  # Gram-Schmidt against every earlier vector
                w = add(w, q, -dot(w, q))
            betas.append(dot(w, w).sqrt().item())
            if j + 1 == steps:
                break
            if betas[j] == 0.0:  # an invariant subspace: go on from a random tangent vector
                w = tangent([torch.randn_like(p) for p in self.params])
                for q in basis:
                    w = add(w, q, -dot(w, q))
            norm = dot(w, w).sqrt()
            basis.append([t / norm for t in w])
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        off = torch.tensor(betas[:-1], dtype=torch.float64)
        values = torch.linalg.eigvalsh(T + torch.diag(off, 1) + torch.diag(off, -1))
        # Hutchinson's trace, one probe after the other
        trace = statistics.fmean(dot(z, op(z)).item() for z in (split(row) for row in draws[1:]))
        return values[-k:].flip(0).numpy(), float(values[0]), trace


def per_model(ref: PerModel, theta: torch.Tensor, seeds: list[int], steps: int):
    out = [ref.spectrum(theta[j], seeds[j], K, SAMPLES, steps) for j in range(len(seeds))]
    return np.stack([o[0] for o in out]), np.array([o[1] for o in out]), np.array([o[2] for o in out])


def batched(worker: Worker, theta: torch.Tensor, seeds: list[int], steps: int):
    x, y = worker.data["train"]
    grad = worker.grad(theta)[0]
    s = curvature.measure(lambda t, v: worker.ensemble.hvp(t, v, x, y), theta, grad, worker.mask, seeds, K,
                          SAMPLES, steps)
    return s.top, s.smallest, s.trace


def speed(name: str, preset: Path, n: int, opt_steps: int, repeats: int) -> None:
    t0 = time.perf_counter()
    plan, index, theta = points(preset, n, opt_steps)
    prepared = time.perf_counter() - t0
    cfg = plan.config
    seeds = [derived_seed(cfg.seed, 4, k, r) for k, r in zip(index // cfg.restarts, index % cfg.restarts)]
    worker = Worker(plan.task, plan.module, plan.layout, "vmap")
    ref = PerModel(plan, *worker.data["train"])
    steps = plan.lanczos
    norms = sphere.constrained_norm(theta, plan.layout.sphere_mask()).numpy()  # the points are on their spheres
    off_sphere = np.max(np.abs(norms / plan.norm[index // cfg.restarts] - 1))
    batched(worker, theta[:2], seeds[:2], steps)  # warm-up: the one-time costs of each way
    per_model(ref, theta[:1], seeds[:1], steps)
    t_loop, t_batch = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        loop = per_model(ref, theta, seeds, steps)
        t_loop.append(time.perf_counter() - t)
        t = time.perf_counter()
        batch = batched(worker, theta, seeds, steps)
        t_batch.append(time.perf_counter() - t)
    a, b = statistics.median(t_loop), statistics.median(t_batch)
    top_rel = np.max(np.abs(batch[0] - loop[0]) / np.abs(loop[0]))
    top1_rel = np.max(np.abs(batch[0][:, 0] - loop[0][:, 0]) / np.abs(loop[0][:, 0]))
    scaled = np.max(np.abs(batch[0] - loop[0]) / np.abs(loop[0][:, :1]))
    trace_rel = np.max(np.abs(batch[2] - loop[2]) / np.abs(loop[2]))
    small = np.max(np.abs(batch[1] - loop[1]) / np.abs(loop[0][:, 0]))
    print(f"{name}: {n} points (norms {cfg.norms} x {cfg.restarts} restart{'s' if cfg.restarts > 1 else ''}, "
          f"{opt_steps} steps each, prepared in {prepared:.1f} s; |theta| / w - 1 at most {off_sphere:.1e}), "
          f"{plan.layout.size} parameters, {len(plan.task.y_train)} training examples; top {K} + smallest "
          f"({steps} Lanczos iterations) + trace ({SAMPLES} probes) of the Riemannian Hessian")
    n_ = f"median of {repeats}"
    print(f"  per model (PyHessian's way)     {a:8.2f} s  ({n_}: {', '.join(f'{t:.2f}' for t in t_loop)}; "
          f"{1e3 * a / n:.1f} ms per point)")
    print(f"  batched (measure, vmap hvp)     {b:8.2f} s  ({n_}: {', '.join(f'{t:.2f}' for t in t_batch)}; "
          f"{1e3 * b / n:.1f} ms per point)")
    print(f"  speed-up per model / batched    {a / b:8.2f}x")
    print(f"  agreement: top {K} eigenvalues max rel diff {top_rel:.1e} (top one {top1_rel:.1e}; relative to "
          f"each point's top eigenvalue {scaled:.1e}), smallest {small:.1e} of the top, trace {trace_rel:.1e}; "
          f"top eigenvalue {loop[0][:, 0].min():.4g} to {loop[0][:, 0].max():.4g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each kind, alternating (default 3)")
    ap.add_argument("--modular-repeats", type=int, default=1,
                    help="part 1's repeats on the modular task (default 1: about 40 s a scan on 2 cores)")
    ap.add_argument("--teacher-norms", default=None, help="part 1's teacher-student norms (default the preset's)")
    ap.add_argument("--modular-norms", default="0.25:4:3:log",
                    help="part 1's modular norms (default 3 of the preset's 9; 0.25:4:9:log for all of them)")
    ap.add_argument("--steps", type=int, default=None, help="part 1's steps on both tasks (default the presets')")
    ap.add_argument("--points", type=int, default=32, help="part 2's points (default 32)")
    ap.add_argument("--opt-steps", type=int, default=200, help="part 2's optimization steps per point (default 200)")
    ap.add_argument("--only", default="", help="run only the tasks whose name contains this")
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    ap.add_argument("--profile", action="store_true", help="part 1: torch.profiler's table of a curvature pass")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, --curvature {K} with {SAMPLES} probes")
    t0 = time.perf_counter()
    if args.part in ("1", "both"):
        print("\n1. the share of --curvature in a scan's wall time")
        for name, preset in TASKS.items():
            if args.only in name:
                teacher = name == "teacher-student"
                share(name, preset, args.teacher_norms if teacher else args.modular_norms, args.steps,
                      args.repeats if teacher else args.modular_repeats, args.profile)
    if args.part in ("2", "both"):
        print(f"\n2. batched against one model at a time (PyHessian's approach), {args.points} points")
        for name, preset in TASKS.items():
            if args.only in name:
                speed(name, preset, args.points, args.opt_steps, args.repeats)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

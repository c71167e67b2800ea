"""What ``--curvature 5`` costs a scan, and the batched spectrum against PyHessian's one model at a time.

    python benchmarks/curvature.py [--threads 2] [--repeats 5] [--fresh 3] [--modular-norms 0.25:4:3:log]
                                   [--modular-repeats 1] [--points 32] [--opt-steps 100] [--speed-repeats 3]
                                   [--steps N] [--teacher-norms SPEC] [--only teacher|modular]
                                   [--part 1|2|both] [--profile] [--flush-denormal]

Both parts run on two tasks, the presets ``data/teacher-student.toml`` (a 5-100-100-5 tanh MLP regression, mlp
engine) and ``data/modular.toml`` (the token MLP on addition mod 59, vmap engine), with ``--curvature 5``: the top
five eigenvalues, the smallest and the trace of the Riemannian Hessian of the training loss, from the default
Lanczos iterations (max(30, 3K) = 30) and 10 Hutchinson probes, in one process with
``torch.set_num_threads(--threads)``. The default run takes about 4 minutes on 2 cores.

1. share   the scan with and without ``--curvature 5`` through the public functions, as ``landscape scan`` runs it
           less the file (``scan.make_plan``, chunks of ``scan.auto_chunk``, the optimizer step of
           ``scan.stepper``, ``scan.run_chunk``), alternately ``--repeats`` times each after a short warm-up run.
           Inside each run with curvature the curvature pass itself (``scan._curvature``, wrapped with a timer in
           this process only) is timed too, so the share is printed two ways: paired, (with - without) / without
           from the separate runs (from their medians, and from the fastest of each, since a shared machine's
           noise only adds time), and within a run, pass / (run - pass), which does not rest on the difference of
           two noisy runs. Target: < 0.30. The first curvature pass of a process (the first task's warm-up run;
           the second task's finds it paid) is printed apart: its first Hessian-vector product imports
           ``torch._dynamo`` (a decomposition's ``torch._disable_dynamo`` wrapper imports it lazily), once per
           process. For teacher-student, ``--fresh`` pairs of ``landscape scan`` end to end in fresh processes
           (``paired.wall_time``) give the share a user sees, imports, that one-time cost and the file included,
           and the import of ``torch._dynamo`` is timed in a fresh process. Teacher-student runs its preset
           (17 norms x 1 restart, 1000 steps). The modular preset (9 norms x 2 restarts, 2000 steps) takes about
           3 minutes a scan on 2 cores, so by default it runs on 3 of its norms (``--modular-norms
           0.25:4:3:log``: 6 points, still 2000 steps) with ``--modular-repeats 1``: read its share within the
           run; both costs are per point, so the share does not depend on the number of norms.
           ``--modular-norms 0.25:4:9:log`` runs the preset's own grid. ``--steps`` overrides both presets' steps
           (the share grows as the steps shrink: the pass costs the same).
2. speed   ``--points`` (32) real parameter vectors on their spheres: the preset's norm range at ceil(32 / restarts)
           norms, each point optimized ``--opt-steps`` (100) steps by ``scan.run_chunk`` (``save_params``, no
           curvature). On all of them, the same spectrum two ways, alternately ``--speed-repeats`` times (medians, after
           a warm-up of each): *per model*, PyHessian's approach written out here (amirgholami/PyHessian,
           ``pyhessian/hessian.py``): one model at a time, its parameters loaded into the ``nn.Module``,
           ``torch.autograd.grad(loss, params, create_graph=True)``, then each Hessian-vector product
           ``torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)`` on lists of parameter tensors, a
           Python loop over Lanczos iterations (full reorthogonalization, Gram-Schmidt against every earlier vector) and
           over Hutchinson probes, with the tangent projection and curvature term applied so that it computes the
           Riemannian Hessian too; *batched*, ``curvature.measure`` on all points at once through ``Ensemble.hessian`` (vmap
           engine: the points' gradient graph built once, each product one backward pass through it), its gradient
           included. Both start
           Lanczos from the same tangent vector and use the same Rademacher probes (``curvature.rademacher`` of each
           point's seed), so they compute the same numbers up to float32 rounding: the script prints the speed-up,
           per-model time / batched time (from the medians and from the fastest runs), the largest relative differences
           of the top eigenvalues, the smallest and the trace, and the cost of one Hessian-vector product per point each
           way (the batched one recomputes the forward and backward pass in every call; the per-model one builds the
           gradient's graph once per model and differentiates through it again).

``--profile`` adds, per task of part 1, where a warm curvature pass over the scan's points spends its time
(``Ensemble.hessian``'s products, the tangent projections, Lanczos's reorthogonalization, the eigh, the random vectors; the
module's functions wrapped with timers in this process) and torch.profiler's operator table of it; it runs at
the scan's starting points, where the modular MLP's large norms saturate the softmax: there a Hessian-vector
product meets subnormal floats and takes about twice as long on a CPU, which ``--flush-denormal``
(``torch.set_flush_denormal(True)``, for the whole run) removes. No timed assertions: the script prints what it
measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import subprocess
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
from paired import wall_time

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


def share(name: str, preset: Path, norms: str | None, steps: int | None, repeats: int, fresh: int,
          profile: bool) -> None:
    plain, curved = config(preset, 0, norms, steps), config(preset, K, norms, steps)
    # warm-up: a short run with curvature on the same points pays the one-time costs (the first torch.func
    # Hessian-vector product of the process, the allocator's first pages) before anything is timed
    dynamo = "torch._dynamo" in sys.modules
    _, cold, _, _ = run_scan(config(preset, K, norms, min(10, curved.steps)))
    dynamo = not dynamo and "torch._dynamo" in sys.modules  # imported by the warm-up run
    without, with_, passes, within = [], [], [], []
    for _ in range(repeats):
        without.append(run_scan(plain)[0])
        total, spent, plan, size = run_scan(curved)
        with_.append(total)
        passes.append(spent)
        within.append(spent / (total - spent))
    r = plan.config.restarts
    print(f"{name} ({preset.relative_to(DATA.parent)}): {plan.n_points} points ({len(plan.norm)} norms x {r} "
          f"restart{'s' if r > 1 else ''}, norms {plan.config.norms}), {plan.config.steps} steps, "
          f"{plan.layout.size} parameters, engine {plan.config.engine}, chunk {size}; --curvature {K}: "
          f"{plan.lanczos} Lanczos iterations + {plan.config.curvature_samples} probes per point")
    pass_s = statistics.median(passes)
    timings("scan without --curvature", without)
    timings(f"scan with --curvature {K}", with_,
            f", of which the curvature pass {pass_s:.2f} s ({1e3 * pass_s / plan.n_points:.1f} ms per point)")
    shares("share, paired runs", without, with_)
    print(f"  share, within each run:       pass / (run - pass) = {statistics.median(within):.3f} (median; runs: "
          f"{', '.join(f'{s:.3f}' for s in within)})   target < {TARGET:.2f}")
    print(f"  first curvature pass of the process (the warm-up run, {min(10, curved.steps)} steps): {cold:.2f} s"
          + (", which imported torch._dynamo: a one-time cost a scan pays once" if dynamo else ""))
    if fresh:
        argv = ["--config", str(preset), "--threads", str(torch.get_num_threads())]
        argv += ["--norms", norms] if norms else []
        argv += ["--steps", str(steps)] if steps else []
        a, b = [], []
        for _ in range(fresh):
            a.append(wall_time("scan", argv))
            b.append(wall_time("scan", [*argv, "--curvature", str(K)]))
        print("  end to end, fresh processes (landscape scan: imports, the one-time set-up and the file included):")
        timings("  scan without --curvature", a)
        timings(f"  scan with --curvature {K}", b)
        shares("  share, end to end", a, b)
        if dynamo:
            code = "import time, torch; t = time.perf_counter(); import torch._dynamo; print(time.perf_counter() - t)"
            took = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        check=True).stdout)
            print(f"  importing torch._dynamo after torch, in a fresh process: {took:.2f} s")
    if profile:
        profile_pass(plan)


def timings(label: str, runs: list[float], more: str = "") -> None:
    print(f"  {label + ':':29s} median {statistics.median(runs):6.2f} s, fastest {min(runs):6.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in runs)}){more}")


def shares(label: str, without: list[float], with_: list[float]) -> None:
    """(with - without) / without from the medians and from the fastest runs (noise only adds time)."""
    a, b = statistics.median(without), statistics.median(with_)
    print(f"  {label + ':':29s} (with - without) / without = {(b - a) / a:.3f} from the medians, "
          f"{(min(with_) - min(without)) / min(without):.3f} from the fastest runs   target < {TARGET:.2f}")


def profile_pass(plan: scan.Plan) -> None:
    """Where a warm curvature pass over the plan's starting points spends its time: ``curvature.measure``'s parts
    timed apart (its module functions wrapped with timers in this process), then torch.profiler's operator table."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    index = np.arange(plan.n_points)
    worker = Worker(plan.task, plan.module, plan.layout, plan.config.engine)
    x, y = worker.data["train"]
    _, theta = scan.start(plan, index)
    grad = worker.grad(theta)[0]
    seeds = [derived_seed(plan.config.seed, 4, int(i), 0) for i in index]
    spent = dict.fromkeys(("hvp", "op", "op in lanczos", "rademacher", "lanczos", "ritz", "hutchinson"), 0.0)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    def hvp(t):
        return worker.ensemble.hessian(t, x, y)

    def timed_hvp(t):
        return timed("hvp", worker.ensemble.hessian(t, x, y))

    def riemannian(*args):
        return timed("op", original["riemannian"](*args))

    def lanczos(*args):
        before = spent["op"]
        try:
            return original["lanczos"](*args)
        finally:
            spent["op in lanczos"] += spent["op"] - before

    def run(hvp_fn):
        return curvature.measure(hvp_fn, theta, grad, worker.mask, seeds, K, SAMPLES, plan.lanczos)

    run(hvp)  # warm
    original = {name: getattr(curvature, name) for name in ("rademacher", "lanczos", "ritz", "hutchinson",
                                                             "riemannian")}
    try:
        for name in ("rademacher", "ritz", "hutchinson"):
            setattr(curvature, name, timed(name, original[name]))
        curvature.lanczos = timed("lanczos", lanczos)
        curvature.riemannian = riemannian
        t0 = time.perf_counter()
        run(timed_hvp)
        total = time.perf_counter() - t0
    finally:
        for name, fn in original.items():
            setattr(curvature, name, fn)
    products = plan.lanczos + SAMPLES
    reorth = spent["lanczos"] - spent["op in lanczos"]
    rest = total - spent["lanczos"] - spent["hutchinson"] - spent["ritz"] - spent["rademacher"]
    print(f"  a warm curvature pass over these {len(index)} points, {total:.3f} s: Hessian-vector products {spent['hvp']:.3f} s "
          f"({products} calls, {1e3 * spent['hvp'] / products:.1f} ms each); the tangent projections and curvature "
          f"term around it {spent['op'] - spent['hvp']:.3f} s; Lanczos's reorthogonalization and bookkeeping "
          f"{reorth:.3f} s; eigh of the tridiagonal matrices {spent['ritz']:.3f} s; random vectors "
          f"{spent['rademacher']:.3f} s; the rest {rest:.3f} s")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run(hvp)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


# ----------------------------------------------------------------------------- part 2: batched against per model

def points(preset: Path, n: int, opt_steps: int) -> tuple[scan.Plan, np.ndarray, torch.Tensor, int]:
    """``n`` real parameter vectors on their spheres: the preset's norm range at ceil(n / restarts) norms (a
    START:STOP:NUM[:log] grid), each point optimized ``opt_steps`` steps (without curvature).
    ``(plan, index, theta [n, P], the Lanczos iterations of --curvature K)``."""
    cfg = config(preset, 0)
    parts = cfg.norms.split(":")
    if len(parts) < 3:
        raise SystemExit(f"{preset}: norms {cfg.norms!r} is not a START:STOP:NUM[:log] grid")
    parts[2] = str(math.ceil(n / cfg.restarts))
    cfg = config(preset, 0, ":".join(parts), opt_steps, save_params=True)
    plan = scan.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    index = np.arange(n)
    result = scan.run_chunk(plan, index, step=scan.stepper(plan))
    steps = curvature.default_steps(K, curvature.dimension(plan.layout))
    return plan, index, torch.as_tensor(result.params, dtype=torch.float32), steps


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
    s = curvature.measure(lambda t: worker.ensemble.hessian(t, x, y), theta, grad, worker.mask, seeds, K,
                          SAMPLES, steps)
    return s.top, s.smallest, s.trace


def one_product(ref: PerModel, worker: Worker, theta: torch.Tensor, calls: int = 3) -> tuple[float, float, float]:
    """Seconds per point of one Hessian-vector product: ``(batched, per model, per model's gradient graph)``: one
    product of ``Ensemble.hessian`` on all points (one vector each, the graph built once; best of ``calls``), against, per model, the gradient kept
    with its graph (built once per model) and one product through it (each summed over the points)."""
    x, y = worker.data["train"]
    n = theta.shape[0]
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(0))[:, None]
    best = float("inf")
    products = worker.ensemble.hessian(theta, x, y)  # the gradient's graph, built once for every product
    for _ in range(calls):
        t = time.perf_counter()
        products(v)
        best = min(best, time.perf_counter() - t)
    graph = product = 0.0
    for j in range(n):
        t = time.perf_counter()
        load_flat(ref.model, ref.layout, theta[j])
        loss = ref.task.member_loss(adapted(ref.task, ref.model(x)), y)
        grads = torch.autograd.grad(loss, ref.params, create_graph=True)
        t1 = time.perf_counter()
        torch.autograd.grad(grads, ref.params, grad_outputs=[u.reshape(p.shape) for u, p in
                                                             zip(v[j, 0].split(ref.layout.numels), ref.params)])
        graph, product = graph + t1 - t, product + time.perf_counter() - t1
    return best / n, product / n, graph / n


def speed(name: str, preset: Path, n: int, opt_steps: int, repeats: int) -> None:
    t0 = time.perf_counter()
    plan, index, theta, steps = points(preset, n, opt_steps)
    prepared = time.perf_counter() - t0
    cfg = plan.config
    seeds = [derived_seed(cfg.seed, 4, k, r) for k, r in zip(index // cfg.restarts, index % cfg.restarts)]
    worker = Worker(plan.task, plan.module, plan.layout, "vmap")
    ref = PerModel(plan, *worker.data["train"])
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
    print(f"  per model (PyHessian's way):  median {a:6.2f} s, fastest {min(t_loop):6.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in t_loop)}; {1e3 * a / n:.1f} ms per point)")
    print(f"  batched (measure, vmap hvp):  median {b:6.2f} s, fastest {min(t_batch):6.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in t_batch)}; {1e3 * b / n:.1f} ms per point)")
    print(f"  speed-up, per model / batched: {a / b:.2f}x from the medians, {min(t_loop) / min(t_batch):.2f}x from the "
          f"fastest runs")
    hv_batch, hv_loop, hv_graph = one_product(ref, worker, theta)
    print(f"  one Hessian-vector product per point: batched {1e3 * hv_batch:.2f} ms (a backward pass through "
          f"the points' gradient graph, built once); per model {1e3 * hv_loop:.2f} ms (a second backward through the "
          f"gradient's graph, built once per model in {1e3 * hv_graph:.2f} ms)")
    print(f"  agreement: top {K} eigenvalues max rel diff {top_rel:.1e} (top one {top1_rel:.1e}; relative to "
          f"each point's top eigenvalue {scaled:.1e}), smallest {small:.1e} of the top, trace {trace_rel:.1e}; "
          f"top eigenvalue {loop[0][:, 0].min():.4g} to {loop[0][:, 0].max():.4g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="part 1, teacher-student: timed scans of each kind, alternating (default 5)")
    ap.add_argument("--modular-repeats", type=int, default=1,
                    help="part 1's repeats on the modular task (default 1: about 40 s a scan on 2 cores)")
    ap.add_argument("--fresh", type=int, default=3,
                    help="part 1, teacher-student: landscape scan end to end in fresh processes, this many pairs "
                         "(default 3; 0: none)")
    ap.add_argument("--teacher-norms", default=None, help="part 1's teacher-student norms (default the preset's)")
    ap.add_argument("--modular-norms", default="0.25:4:3:log",
                    help="part 1's modular norms (default 3 of the preset's 9; 0.25:4:9:log for all of them)")
    ap.add_argument("--steps", type=int, default=None, help="part 1's steps on both tasks (default the presets')")
    ap.add_argument("--speed-repeats", type=int, default=3,
                    help="part 2: timed computations of each kind, alternating (default 3)")
    ap.add_argument("--points", type=int, default=32, help="part 2's points (default 32)")
    ap.add_argument("--opt-steps", type=int, default=100, help="part 2's optimization steps per point (default 100)")
    ap.add_argument("--only", default="", help="run only the tasks whose name contains this")
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    ap.add_argument("--profile", action="store_true",
                    help="part 1: where a curvature pass spends its time, and torch.profiler's table of it")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True) for the whole run: subnormal floats read as zero")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flush = args.flush_denormal and torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, --curvature {K} with {SAMPLES} probes"
          + (", subnormal floats flushed to zero" if flush else ""))
    t0 = time.perf_counter()
    if args.part in ("1", "both"):
        print("\n1. the share of --curvature in a scan's wall time")
        for name, preset in TASKS.items():
            if args.only in name:
                teacher = name == "teacher-student"
                share(name, preset, args.teacher_norms if teacher else args.modular_norms, args.steps,
                      args.repeats if teacher else args.modular_repeats, args.fresh if teacher else 0, args.profile)
    if args.part in ("2", "both"):
        print(f"\n2. batched against one model at a time (PyHessian's approach), {args.points} points")
        for name, preset in TASKS.items():
            if args.only in name:
                speed(name, preset, args.points, args.opt_steps, args.speed_repeats)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

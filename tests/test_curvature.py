"""The Riemannian Hessian along the reduced landscape (``landscape.engine.curvature``, ``scan --curvature``).

Checked against what does not depend on the code under test: the second derivative of the loss along the
sphere's geodesics by finite differences, the eigenvalues of a quadratic on a sphere known in closed form, the
explicitly formed Hessian projected on the tangent space, and one point at a time against a batch."""

import hashlib
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, hessian

from landscape import store
from landscape.cli import main
from landscape.config.settings import ScanConfig
from landscape.engine import curvature, sphere
from landscape.engine.ensemble import Ensemble
from landscape.engine.layout import flatten, layout_of
from landscape.experiments import scan
from landscape.tasks import get_task
from tasks_for_tests import tiny


def _model(constrain="*", groups=None):
    task = tiny()
    torch.manual_seed(0)
    module = task.model().double()
    layout = layout_of(module, constrain, groups)
    x, y = task.x_train.double(), task.y_train.double()

    def loss(flat):
        return task.loss(functional_call(module, layout.unflatten(flat), (x,)), y)
    return task, module, layout, loss, x, y


def _op(loss, theta, mask):
    """The Riemannian Hessian of ``loss`` at ``theta [M, P]`` as curvature.riemannian builds it from exact HVPs."""
    def hvp(v):
        return torch.stack([torch.stack([torch.func.jvp(grad(loss), (t,), (u,))[1] for u in vs])
                            for t, vs in zip(theta, v)])
    g = torch.stack([grad(loss)(t) for t in theta])
    return curvature.riemannian(hvp, theta, g, mask), g


def _geodesic(theta, d, mask, t):
    """The geodesic of (product of) sphere(s) x free space through ``theta`` with velocity ``d`` (tangent), at
    time ``t``: a great circle on each sphere, a straight line on the free coordinates."""
    rows = [torch.ones_like(theta)] if mask is None else list(mask) if mask.dim() == 2 else [mask]
    out = (theta + t * d) * (1 - sum(rows))
    for m in rows:
        dc, w = d * m, torch.linalg.vector_norm(theta * m)
        s = torch.linalg.vector_norm(dc)
        out = out + torch.cos(t * s / w) * theta * m + torch.sin(t * s / w) * w * dc / s
    return out


@pytest.mark.parametrize("constrain, groups", [("*", None), ("0.*", None), ("*", ["0.*", "2.*"])],
                         ids=["sphere", "sphere x free", "two spheres"])
def test_projection_and_curvature_term_against_finite_differences_on_the_sphere(constrain, groups):
    """<d, Hess d> is the second derivative of the loss along the geodesic with velocity d, and <u, Hess v> its
    polarization; Hess maps into the tangent space and sends the normal direction to zero."""
    task, module, layout, loss, x, y = _model(constrain, groups)
    mask = layout.sphere_mask()
    mask = None if mask is None else mask.double()
    g = torch.Generator().manual_seed(1)
    theta = flatten(module, layout).double()[None] * 1.7
    op, _ = _op(loss, theta, mask)
    u, v = (sphere.tangent(theta, torch.randn(1, layout.size, generator=g, dtype=torch.float64), mask)[0]
            for _ in range(2))
    h = 1e-4

    def second(d):
        f = [loss(_geodesic(theta[0], d, mask, t)) for t in (-h, 0.0, h)]
        return float((f[0] - 2 * f[1] + f[2]) / h ** 2)

    Hu = op(u[None, None])[0, 0]
    assert float(u @ Hu) == pytest.approx(second(u), rel=1e-5)
    Hv = op(v[None, None])[0, 0]
    assert float(v @ Hu) == pytest.approx((second(u + v) - second(u - v)) / 4, rel=1e-5)
    assert float(u @ Hv) == pytest.approx(float(v @ Hu), rel=1e-10)  # symmetric
    rows = [torch.ones_like(theta[0])] if mask is None else list(mask) if mask.dim() == 2 else [mask]
    for m in rows:  # each sphere's normal direction
        tc = theta[0] * m
        assert abs(float(Hu @ tc)) < 1e-12 * float(Hu.norm() * tc.norm())  # tangent
        assert op(tc[None, None]).abs().max() < 1e-12  # annihilated


def _quadratic(a, theta, mask):
    """curvature.measure on f = 1/2 sum a_i x_i^2 at ``theta``."""
    P = len(a)
    return curvature.measure(lambda t: lambda v: v * a, theta, theta * a, mask, list(range(len(theta))), k=3,
                             samples=4, steps=P - (1 if mask is None or mask.dim() == 1 else mask.shape[0]))


def test_quadratic_on_a_sphere_has_the_known_eigenvalues():
    """f = 1/2 x^T A x (A = diag a) on ||x|| = w: at x = w e_i the Riemannian Hessian has eigenvalues a_j - a_i,
    j != i: a minimum at the smallest a_i, a maximum at the largest, saddles between. With free coordinates
    (x_f = 0 at a critical point), their a_f join the spectrum; on a product of spheres, each sphere's own."""
    a = torch.tensor([0.5, 1.0, 2.0, 3.5, 5.0, 8.0], dtype=torch.float64)
    theta = torch.zeros(3, 6, dtype=torch.float64)
    theta[0, 0], theta[1, 5], theta[2, 2] = 2.0, 2.0, 2.0
    s = _quadratic(a, theta, None)
    for j, i in enumerate((0, 5, 2)):
        want = np.sort(np.delete(a.numpy(), i) - a[i].item())
        np.testing.assert_allclose(s.top[j], want[::-1][:3], atol=1e-12)
        assert s.smallest[j] == pytest.approx(want[0], abs=1e-12)
        assert s.trace[j] == pytest.approx(want.sum(), abs=1e-12)  # a diagonal operator: exact from any probe
    assert s.smallest[0] > 0 and s.top[1, 0] < 0 and s.smallest[2] < 0 < s.top[2, 0]  # min, max, saddle
    free = torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.float64)  # a_4 = 5, a_5 = 8 free
    s = _quadratic(a, theta[:1], free)
    np.testing.assert_allclose(s.top[0], [8.0, 5.0, 3.0], atol=1e-12)  # 8, 5 free; 3.5 - 0.5 on the sphere
    assert s.smallest[0] == pytest.approx(0.5, abs=1e-12)
    groups = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float64)
    both = torch.zeros(1, 6, dtype=torch.float64)
    both[0, 1], both[0, 5] = 1.0, 3.0  # group 1 at e_1 (a saddle there), group 2 at e_5 (its maximum)
    s = _quadratic(a, both, groups)
    want = np.sort([0.5 - 1.0, 2.0 - 1.0, 3.5 - 8.0, 5.0 - 8.0])
    np.testing.assert_allclose(s.top[0], want[::-1][:3], atol=1e-12)
    assert s.smallest[0] == pytest.approx(want[0], abs=1e-12)


def _explicit(loss, theta, mask):
    """Eigenvalues and trace of P H P - c P_c restricted to the tangent space, formed explicitly."""
    out = []
    for th in theta:
        H, g = hessian(loss)(th), grad(loss)(th)
        m = torch.ones_like(th) if mask is None else mask
        tc = th * m
        P = torch.eye(len(th), dtype=th.dtype) - torch.outer(tc, tc) / tc.dot(tc)
        R = P @ H @ P - (g.dot(tc) / tc.dot(tc)) * P @ torch.diag(m)
        basis = torch.linalg.svd(P)[0][:, :len(th) - 1]
        out.append((torch.linalg.eigvalsh(basis.T @ R @ basis).numpy(), float(torch.trace(R))))
    return out


@pytest.mark.parametrize("engine", ["vmap", "loop", "mlp"])
@pytest.mark.parametrize("constrain", ["*", "2.*"])
def test_lanczos_equals_the_explicit_projected_hessian(engine, constrain):
    """Batched Lanczos through each engine's Hessian-vector products against the explicitly formed Riemannian
    Hessian, at points on three spheres: every top-5 and smallest eigenvalue within 1e-4 relative."""
    task, module, layout, loss, x, y = _model(constrain)
    ens = Ensemble(task, module, layout, engine)
    mask = layout.sphere_mask()
    mask = None if mask is None else mask.double()
    theta = torch.stack([flatten(module, layout) * a for a in (0.5, 1.0, 2.5)]).double()
    g = torch.stack([grad(loss)(t) for t in theta])
    s = curvature.measure(lambda t: ens.hessian(t, x, y), theta, g, mask, [1, 2, 3], 5, 10, layout.size - 1)
    for j, (ev, _) in enumerate(_explicit(loss, theta, mask)):
        scale = np.abs(ev).max()
        np.testing.assert_allclose(s.top[j], ev[::-1][:5], rtol=1e-4, atol=1e-4 * scale)
        assert abs(s.smallest[j] - ev[0]) <= 1e-4 * scale
        np.testing.assert_allclose(np.sort(s.ritz_values[j]), ev, atol=1e-4 * scale)
        assert s.ritz_weights[j].sum() == pytest.approx(1.0, abs=1e-10)
        assert s.residual[j] < 1e-6 * scale  # a full Krylov space: converged


def test_hutchinson_is_unbiased_and_its_standard_error_honest():
    """Over 200 seeds of 50 probes, (estimate - exact trace) / standard error is close to a standard normal: mean
    ~0, sd ~1, and beyond 3 standard errors about as rarely as a normal is (0.27 %; at most 2 % allowed). (From
    10 probes the standard error is itself uncertain: a t distribution with 9 degrees of freedom, 1.5 % beyond 3.)"""
    task, module, layout, loss, x, y = _model()
    theta = flatten(module, layout).double()[None] * 1.3
    op, _ = _op(loss, theta, None)
    (ev, exact), = _explicit(loss, theta, None)
    assert exact == pytest.approx(ev.sum(), rel=1e-10)
    basis = torch.eye(layout.size, dtype=torch.float64)
    R = torch.stack([op(e[None, None])[0, 0] for e in basis])  # the operator's matrix, probed column by column
    z = []
    for seed in range(200):
        probes = curvature.rademacher(seed, 51, layout.size)[1:].double()
        trace, se = curvature.hutchinson(lambda v: v @ R, probes[None])
        z.append((float(trace[0]) - exact) / float(se[0]))
    z = np.array(z)
    assert abs(z.mean()) < 0.25 and 0.75 < z.std() < 1.3 and (np.abs(z) > 3).mean() <= 0.02


def _plan(**kw):
    cfg = ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:4", restarts=2, steps=60, curvature=3,
                     curvature_samples=5, **kw)
    from landscape.config.settings import validate
    validate(cfg)
    return scan.make_plan(cfg, get_task(cfg.task, cfg.task_options))


@pytest.mark.parametrize("engine", ["vmap", "loop"])
def test_batching_equals_one_point_at_a_time(engine):
    """A chunk of eight points gives every point the spectrum it gets alone (its random vectors come from its own
    seed); the loop engine, member after member, the same."""
    plan = _plan()
    whole = scan.run_chunk(plan, np.arange(8), engine=engine)
    alone = scan.concat([scan.run_chunk(plan, np.array([i]), engine="vmap") for i in range(8)])
    for name, a, b in zip(store.CURVATURE, whole.curvature, alone.curvature):
        if name in ("top", "smallest", "trace"):
            scale = np.abs(b).max()
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * scale, err_msg=name)
    assert np.isfinite(whole.curvature[0]).all() and whole.curvature[0].shape == (8, 3)


def test_scan_stores_and_reads_the_spectrum(tmp_path):
    """scan --curvature: /scan/curvature holds each point's spectrum with descriptions and scales; the API reads
    it as variables on the scan's axes; a second-order certificate holds at converged minimizers."""
    out = tmp_path / "c.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:4", "--restarts", "2", "--steps", "200",
                 "--curvature", "--quiet", "--out", str(out)]) == 0
    import landscape
    ds = landscape.open(out)["scan"].to_dataset()
    assert ds["curvature_top"].dims == ("norm", "restart", "eigenvalue") and ds.sizes["eigenvalue"] == 5
    assert ds.sizes["ritz"] == 30 and ds["curvature_trace"].dims == ("norm", "restart")
    top = ds["curvature_top"].values
    assert np.isfinite(top).all() and (np.diff(top, axis=-1) <= 0).all()
    assert (ds["curvature_smallest"].values <= top[..., -1]).all()
    assert (np.abs(ds["curvature_multiplier"]) > 0).all() and (ds["curvature_residual"] > 0).all()
    assert "Riemannian Hessian" in ds["curvature_top"].attrs["description"]
    with h5py.File(out) as f:
        c = f["scan/curvature"]
        assert c["top"].dims[2]["eigenvalue"][()].tolist() == [1, 2, 3, 4, 5]
        assert all("description" in c[n].attrs for n in store.CURVATURE)
    assert main(["info", str(out)]) == 0


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("flags, says", [
    (["--curvature", "41"], "the tangent space has only 40 dimensions"),
    (["--curvature", "5", "--lanczos", "41"], "at most the tangent space's dimension, 40"),
    (["--curvature", "5", "--curvature-samples", "0"], "--curvature-samples must be an integer >= 1, got 0"),
    (["--curvature", "5", "--curvature-samples", "-3"], "--curvature-samples must be an integer >= 1, got -3"),
    (["--curvature-samples", "4"], "which is not given"),
    (["--curvature", "6", "--lanczos", "4"], "fewer iterations than --curvature 6"),
    (["--curvature", "-1"], "--curvature must be an integer >= 0, got -1"),
])
def test_bad_curvature_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, flags, says):
    out = tmp_path / "c.h5"
    base = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--steps", "5", "--quiet", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        sys.exit(main([*base, *flags]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert main(base) == 0  # a finished file beside the refusal is left as it was
    before = _digest(out)
    with pytest.raises(SystemExit):
        sys.exit(main([*base, *flags]))
    assert _digest(out) == before


KILLER = """
import os, signal, sys
from landscape.engine import curvature
real, calls = curvature.hutchinson, [0]
def hutchinson(*args, **kw):  # the second chunk's pass, after its Lanczos: the process dies there
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kw)
curvature.hutchinson = hutchinson
from landscape.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_a_kill_during_the_curvature_pass(tmp_path, env):
    """SIGKILL in the middle of a chunk's curvature pass: the file holds the first chunk, finished, and nothing of
    the second; the rerun computes the rest, and the result equals an uninterrupted run's."""
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    killed, clean = tmp_path / "killed.h5", tmp_path / "clean.h5"
    argv = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--restarts", "2", "--steps", "40",
            "--chunk", "2", "--curvature", "3", "--curvature-samples", "4", "--quiet"]
    r = subprocess.run([sys.executable, str(killer), *argv, "--out", str(killed)], env=env, capture_output=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    partial = store.read_scan(killed)
    assert (partial["status"] != 0).sum() == 2  # the first chunk: done, with its spectrum
    assert np.isfinite(partial["curvature"]["top"][partial["status"] == 1]).all()
    assert np.isnan(partial["curvature"]["top"][partial["status"] == 0]).all()
    subprocess.run([sys.executable, "-m", "landscape", *argv, "--out", str(killed)], env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "landscape", *argv, "--out", str(clean)], env=env, check=True,
                   capture_output=True)
    a, b = store.read_scan(killed), store.read_scan(clean)
    assert (a["status"] == 1).all()
    for name in store.CURVATURE:
        np.testing.assert_array_equal(a["curvature"][name], b["curvature"][name], err_msg=name)


def test_shards_merge_with_their_spectra(tmp_path, capsys):
    """Two shards with --curvature merge into one file whose spectra are the unsharded scan's."""
    args = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--steps", "30", "--curvature", "2",
            "--quiet"]
    whole = tmp_path / "whole.h5"
    assert main([*args, "--out", str(whole)]) == 0
    sharded = tmp_path / "s.h5"
    for i in range(2):
        assert main([*args, "--out", str(sharded), "--shard", f"{i}/2"]) == 0
    shards = sorted(str(p) for p in tmp_path.glob("s.shard-*.h5"))
    assert main(["merge", *shards, "-o", str(tmp_path / "m.h5")]) == 0
    a, b = store.read_scan(tmp_path / "m.h5"), store.read_scan(whole)
    scale = np.abs(b["curvature"]["top"]).max()
    for name in ("top", "smallest", "trace", "ritz_values"):  # other chunks: equal to float32 rounding
        np.testing.assert_allclose(a["curvature"][name], b["curvature"][name], atol=1e-5 * scale, err_msg=name)


@pytest.mark.parametrize("fix_norm", [False, True])
def test_train_logs_the_sharpness_of_each_run(tmp_path, fix_norm):
    """train --metrics sharpness: at the last logged step, each run's sharpness/top and /trace are those of the
    explicitly formed Hessian at its stored parameters: Euclidean for a free run, Riemannian on the sphere of a
    --fix-norm run."""
    import landscape as ls

    out = tmp_path / "t.h5"
    flags = ["--fix-norm"] if fix_norm else []
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "30", "--init-scale", "1,2",
                 "--log-every", "10", "--metrics", "sharpness", "--quiet", "--out", str(out), *flags]) == 0
    runs = ls.open(out)["trajectories"].to_dataset()
    task, module, layout, loss, x, y = _model()
    for name in runs.trajectory.values:
        theta = torch.tensor(store.final_params(out, str(name))[0], dtype=torch.float64)
        H = hessian(loss)(theta)
        if fix_norm:
            (ev, trace), = _explicit(loss, theta[None], None)
        else:
            ev, trace = torch.linalg.eigvalsh(H).numpy(), float(torch.trace(H))
        row = runs.sel(trajectory=name).isel(step=-1)
        assert float(row.sharpness_top) == pytest.approx(ev[-1], rel=1e-4)
        assert float(row.sharpness_smallest) >= ev[0] - 1e-4 * abs(ev[-1])  # a Ritz value: never below the spectrum
        assert abs(float(row.sharpness_trace) - trace) <= 4 * float(row.sharpness_trace_se)


def test_analysis_names_saddles_and_where_sharpness_changes_fastest():
    """On a scan dict with a known spectrum: the point with a negative Ritz value beyond rounding is a saddle,
    one within it is not, and the top eigenvalue's steepest log-log change lies where it was put."""
    from landscape.analysis import curvature as acurv
    from landscape.analysis.landscape import best_restart
    from landscape.report import sharpness_lines, stationarity_lines

    norm = np.array([1.0, 2.0, 4.0, 8.0])
    top = np.array([1.0, 1.2, 10.0, 11.0])  # the jump: between w 2 and 4
    K = len(norm)
    scan_dict = {"status": np.ones((K, 1), np.int8), "train_loss": np.full((K, 1), 0.1), "norm": norm,
                 "alpha": norm / 2, "grad_norm": np.array([[1e-4], [2e-4], [3e-3], [1e-4]]),
                 "curvature": {"top": np.stack([top, top / 2], -1)[:, None], "residual": np.full((K, 1), 1e-3),
                               "smallest": np.array([[0.01], [-1e-6], [-0.5], [-0.2]]),
                               "multiplier": np.full((K, 1), 0.3),
                               "trace": (3 * top)[:, None], "trace_se": np.full((K, 1), 0.1)}}
    scan_dict["grad_norm"][3] = 0.05  # above 0.01 x 0.2 x 8: negative curvature, not stationary
    st = acurv.stationarity(scan_dict)
    assert [s.alpha for s in st.saddles] == [2.0] and st.minima == 2  # -1e-6 at top 1.2: rounding
    assert [s.alpha for s in st.unsettled] == [4.0]
    assert st.grad_norm_max == pytest.approx(0.05) and st.grad_norm_at == 4.0
    sh = acurv.sharpness(scan_dict, best_restart(scan_dict))
    assert sh.fastest_between == (2.0, 4.0) and sh.fastest_rate == pytest.approx(np.log(10 / 1.2) / np.log(2))
    text = "\n".join(stationarity_lines(st) + sharpness_lines(sh))
    assert "1 of 4 points are saddles" in text and "alpha 2, restart 0: smallest Ritz value -0.5," in text
    assert "1 of 4 points are not stationary" in text and "alpha 4, restart 0: smallest Ritz value -0.2," in text
    assert "between w 2 and 4" in text


def test_plot_draws_the_sharpness_under_the_landscape(tmp_path):
    """The L/U figure of a scan with curvature has a panel under it with the top eigenvalue and the trace."""
    from landscape.figures.landscape import scan_figure

    out = tmp_path / "c.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--steps", "30", "--curvature", "2",
                 "--quiet", "--out", str(out)]) == 0
    s = store.read_scan(out)
    fig = scan_figure(s)
    panel = next(ax for ax in fig.axes if ax.get_ylabel() == "Riemannian Hessian")
    lines = {line.get_label(): line.get_ydata() for line in panel.get_lines()}
    np.testing.assert_allclose(lines["top eigenvalue $\\lambda_{max}$"], s["curvature"]["top"][:, 0, 0])
    np.testing.assert_allclose(lines["trace (Hutchinson)"], s["curvature"]["trace"][:, 0])
    assert main(["plot", str(out), "-o", str(tmp_path / "c.png")]) == 0 and (tmp_path / "c.png").stat().st_size > 10_000


def test_float32_scan_equals_the_float64_hessian_at_its_minimizers(tmp_path):
    """A real scan in float32 (the tiny model, Lanczos over the whole tangent space) against the Riemannian Hessian
    formed explicitly in float64 at its stored minimizers: every top-5 eigenvalue within 1e-4 relative, and the
    smallest within 1e-4 of the top; the trace within 4 of its standard errors."""
    out = tmp_path / "c.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:3:3", "--steps", "200", "--save-params",
                 "--curvature", "--lanczos", "40", "--curvature-samples", "20", "--quiet", "--out", str(out)]) == 0
    s = store.read_scan(out)
    task, module, layout, loss, x, y = _model()
    theta = torch.tensor(s["params"][:, 0], dtype=torch.float64)
    for k, (ev, trace) in enumerate(_explicit(loss, theta, None)):
        c = s["curvature"]
        np.testing.assert_allclose(c["top"][k, 0], ev[::-1][:5], rtol=1e-4)
        assert abs(c["smallest"][k, 0] - ev[0]) <= 1e-4 * ev[-1]
        assert abs(c["trace"][k, 0] - trace) <= 4 * c["trace_se"][k, 0]


def test_old_scans_resume_and_the_resolved_lanczos_is_the_identity():
    """A scan without --curvature has the identity files written before it existed; --lanczos given as its
    default resolves to the same scan as the default."""
    from landscape.config.settings import validate
    from landscape.store.scan import scan_identity

    def ident(**kw):
        cfg = validate(ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:3", **kw))
        return scan_identity(cfg, scan.make_plan(cfg, get_task(cfg.task, cfg.task_options)))

    assert not {"curvature", "curvature_samples", "lanczos"} & set(ident())
    assert ident(curvature=5) == ident(curvature=5, lanczos=30) != ident(curvature=5, lanczos=31)


def test_diverged_members_and_points_get_nan_and_the_others_their_spectrum(tmp_path):
    """A run that diverges beside one that does not: its sharpness is NaN, the other's finite; the sweep finishes.
    A scan point that diverges is stored diverged with a NaN spectrum."""
    import landscape as ls

    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:explosive", "--steps", "40", "--init-scale", "1,30",
                 "--log-every", "20", "--metrics", "sharpness", "--quiet", "--out", str(out)]) == 0
    runs = ls.open(out)["trajectories"].to_dataset()
    last = runs.isel(step=-1)
    assert list(runs.status.values) == ["done", "diverged"]
    assert np.isfinite(last.sharpness_top.values[0]) and np.isnan(last.sharpness_top.values[1])
    out = tmp_path / "s.h5"
    assert main(["scan", "--task", "tasks_for_tests:explosive", "--norms", "1,1000", "--absolute", "--steps", "20",
                 "--curvature", "2", "--quiet", "--out", str(out)]) == 0
    s = store.read_scan(out)
    assert s["status"][:, 0].tolist() == [1, 2]
    assert np.isfinite(s["curvature"]["top"][0]).all() and all(np.isnan(v[1]).all() for v in s["curvature"].values())


def test_one_probe_and_continuation_branches(tmp_path):
    """--curvature-samples 1: a trace without a standard error, accepted on resume; continuation branches store
    their own spectra."""
    out = tmp_path / "b.h5"
    argv = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--steps", "20", "--curvature", "2",
            "--curvature-samples", "1", "--branch", "both", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    for branch, s in store.read_branches(out).items():
        assert np.isfinite(s["curvature"]["trace"]).all() and np.isnan(s["curvature"]["trace_se"]).all(), branch
        assert (s["status"] == 1).all()
    before = _digest(out)
    assert main(argv) == 0 and _digest(out) == before  # nothing to recompute


def test_sharpness_of_runs_on_part_of_the_training_set(tmp_path):
    """--train-frac: each run's Hessian is its own examples' (Euclidean, formed explicitly on them)."""
    import landscape as ls

    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "20", "--train-frac", "0.5,1",
                 "--log-every", "10", "--metrics", "sharpness", "--quiet", "--out", str(out)]) == 0
    runs = ls.open(out)["trajectories"].to_dataset()
    task, module, layout, loss, x, y = _model()
    for name, frac in zip(runs.trajectory.values, runs.train_frac.values):
        n = int(round(frac * len(x)))
        theta = torch.tensor(store.final_params(out, str(name))[0], dtype=torch.float64)
        H = hessian(lambda f: task.loss(functional_call(module, layout.unflatten(f), (x[:n],)), y[:n]))(theta)
        top = float(runs.sel(trajectory=name).isel(step=-1).sharpness_top)
        assert top == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-4), frac


def test_the_spectral_density_of_a_known_spectrum():
    """Stochastic Lanczos quadrature on a diagonal operator run to the whole space: the Ritz values are the
    eigenvalues, their weights the start vector's squared components, and the density integrates to 1."""
    from landscape.analysis.curvature import density

    a = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    start = torch.tensor([[0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    values, first, _ = curvature.ritz(*curvature.lanczos(lambda v: v * a, start, 4, lambda i: None))
    np.testing.assert_allclose(values[0], a, atol=1e-12)
    np.testing.assert_allclose(first.square()[0], 0.25, atol=1e-12)
    grid = np.linspace(-2, 6, 4001)
    rho = density(values.numpy(), first.square().numpy(), grid, 0.05)[0]
    assert np.trapezoid(rho, grid) == pytest.approx(1.0, abs=1e-6)
    assert rho[np.searchsorted(grid, 4.0)] == pytest.approx(0.25 / (0.05 * np.sqrt(2 * np.pi)), rel=1e-3)


@pytest.mark.parametrize("argv", [["scan", "--norms", "0.5:2:2", "--curvature", "2"],
                                  ["train", "--metrics", "sharpness"]], ids=["scan", "train"])
def test_a_loss_autograd_differentiates_once_is_refused(tmp_path, capsys, argv):
    """A model whose backward autograd cannot differentiate again gives Hessian products that silently drop a term
    (measured: asymmetric by 0.14 relative); --curvature and --metrics sharpness refuse it in one line before any
    step, and nothing is written. Without them the model scans as before."""
    out = tmp_path / "o.h5"
    with pytest.raises(SystemExit) as e:
        sys.exit(main([*argv, "--task", "tasks_for_tests:once_differentiable", "--steps", "3", "--quiet",
                       "--out", str(out)]))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "not symmetric" in err and argv[-2] in err, err
    assert not out.exists()
    assert main(["scan", "--task", "tasks_for_tests:once_differentiable", "--norms", "1", "--steps", "3", "--quiet",
                 "--out", str(out)]) == 0

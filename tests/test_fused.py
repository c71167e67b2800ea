"""Fused (compiled) optimizer steps agree with the eager reference, compile once, and --compile is checked."""

import numpy as np
import pytest
import torch

from landscape.config import schedule
from landscape.engine import fused, optim, sphere
from landscape.cli import main

needs_compile = pytest.mark.skipif(fused.unavailable() is not None, reason=f"{fused.unavailable()}")


def _run(step: fused.Step, theta, grad_of, lr_of, steps=200, **kw):
    state = optim.AdamState.zeros_like(theta)
    for t in range(steps):
        theta, state = step(theta, grad_of(theta), state, lr_of(t), **kw)
    return theta, state


def _problem(M=3, P=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    curvature = 0.5 + torch.rand(M, P, generator=g)
    center, theta = torch.randn(M, P, generator=g), torch.randn(M, P, generator=g)
    return theta, (lambda th: curvature * (th - center))  # a member-specific convex quadratic: rounding is not amplified


MASKS = {
    "all": lambda P: None,
    "part": lambda P: (torch.arange(P) % 3 > 0).float(),
    "two groups": lambda P: torch.stack([(torch.arange(P) < 15).float(), (torch.arange(P) >= 25).float()]),
}


@needs_compile
@pytest.mark.parametrize("kind", ["riemannian", "project"])
@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_constrained_steps_agree_with_the_reference_over_200_steps(kind, mask_kind):
    theta, grad_of = _problem()
    mask = MASKS[mask_kind](theta.shape[1])
    target = torch.tensor([[1.0, 2.0], [0.5, 1.5], [3.0, 0.7]]) if mask_kind == "two groups" else \
        torch.tensor([1.0, 2.5, 0.4])
    theta = sphere.retract(theta, target, mask)
    cosine = lambda t: schedule.cosine_lr(0.05, t, 200)  # noqa: E731 -- a schedule that changes every step
    ref, ref_state = _run(fused.Step(kind, False), theta, grad_of, cosine, target=target, mask=mask)
    got, got_state = _run(fused.Step(kind, True), theta, grad_of, cosine, target=target, mask=mask)
    torch.testing.assert_close(got, ref, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(got_state.v, ref_state.v, rtol=2e-5, atol=1e-8)
    assert got_state.t == ref_state.t == 200
    torch.testing.assert_close(sphere.constrained_norm(got, mask), target, rtol=1e-5, atol=0)


@needs_compile
def test_adamw_and_norm_fixed_adamw_agree_with_the_reference():
    theta, grad_of = _problem(M=4)
    wd = torch.tensor([[0.0], [0.1], [1.0], [3.0]])
    warm = lambda t: schedule.scheduled_lr(0.01, t, 200, warmup=20)  # noqa: E731
    ref, _ = _run(fused.Step("adamw", False, (0.9, 0.98)), theta, grad_of, warm, weight_decay=wd)
    got, _ = _run(fused.Step("adamw", True, (0.9, 0.98)), theta, grad_of, warm, weight_decay=wd)
    torch.testing.assert_close(got, ref, rtol=2e-5, atol=2e-6)
    mask = MASKS["part"](theta.shape[1])  # --fix-norm: the free coordinates decay, the sphere's do not
    target = sphere.constrained_norm(theta, mask)
    ref, _ = _run(fused.Step("riemannian", False, (0.9, 0.98)), theta, grad_of, warm, target=target, mask=mask,
                  weight_decay=wd)
    got, _ = _run(fused.Step("riemannian", True, (0.9, 0.98)), theta, grad_of, warm, target=target, mask=mask,
                  weight_decay=wd)
    torch.testing.assert_close(got, ref, rtol=2e-5, atol=2e-6)


@needs_compile
def test_a_changing_learning_rate_compiles_once(monkeypatch):
    notes = []
    step = fused.Step("riemannian", True, on_note=notes.append)
    theta, grad_of = _problem(M=2, P=16, seed=1)
    import torch._dynamo.utils as dyn

    before = dyn.counters["stats"]["unique_graphs"]
    _run(step, sphere.retract(theta, torch.ones(2)), grad_of, lambda t: 0.1 / (t + 1), steps=30, target=torch.ones(2))
    assert dyn.counters["stats"]["unique_graphs"] - before <= 1
    assert len(notes) == 1 and "compiled the Riemannian Adam step for [2, 16]" in notes[0]


def test_auto_compiles_only_long_runs():
    assert not fused.use_compile("auto", "cpu", 1e8)
    assert not fused.use_compile("off", "cpu", 1e12)
    assert fused.use_compile("on", "cpu", 1)
    assert fused.use_compile("auto", "cpu", 1e11) == (fused._missing("cpu") is None)


@needs_compile
def test_a_compiled_scan_matches_the_eager_one(tmp_path):
    from landscape import store

    argv = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:3", "--steps", "40", "--quiet"]
    assert main([*argv, "--compile", "off", "--out", str(tmp_path / "e.h5")]) == 0
    assert main([*argv, "--compile", "on", "--out", str(tmp_path / "c.h5")]) == 0
    e, c = store.read_scan(tmp_path / "e.h5"), store.read_scan(tmp_path / "c.h5")
    np.testing.assert_allclose(c["train_loss"], e["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(c["test_loss"], e["test_loss"], rtol=1e-4)


def test_compile_on_where_it_cannot_run_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fused, "unavailable", lambda device="cpu": "no C++ compiler here")
    out = tmp_path / "x.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--compile", "on", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--compile on: no C++ compiler here" in err
    assert not out.exists()


def test_a_compiler_that_fails_in_the_trial_makes_it_unavailable(monkeypatch):
    def broken(fn, **kw):
        def run(*args):
            raise RuntimeError("fatal error: Python.h: No such file or directory")
        return run

    fused._unavailable.cache_clear()
    monkeypatch.setattr(fused, "_missing", lambda device: None)  # as if everything were installed
    monkeypatch.setattr(torch, "compile", broken)
    try:
        why = fused.unavailable("cpu")
        assert why is not None and "failed in a trial" in why and "Python.h" in why, why
        assert fused.use_compile("auto", "cpu", 1e12)  # auto pays no trial: a real failure goes on eagerly
    finally:
        fused._unavailable.cache_clear()  # the real compiler's verdict for the other tests


def test_a_step_whose_compilation_fails_goes_on_eagerly(monkeypatch):
    def broken(*args):
        raise RuntimeError("inductor: C++ compile error")

    monkeypatch.setattr(fused, "_compiled", lambda kind: broken)
    notes = []
    theta, grad_of = _problem(M=2, P=8)
    target = torch.ones(2)
    theta = sphere.retract(theta, target)
    got, _ = _run(fused.Step("riemannian", True, on_note=notes.append), theta, grad_of, lambda t: 0.01, steps=5,
                  target=target)
    ref, _ = _run(fused.Step("riemannian", False), theta, grad_of, lambda t: 0.01, steps=5, target=target)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert len(notes) == 1 and "failed" in notes[0] and "eager" in notes[0]

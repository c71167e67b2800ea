"""The whole step (gradient and optimizer update compiled as one function) agrees with the eager reference,
compiles once per model and shape, and falls back to the eager calls when compilation fails."""

import numpy as np
import torch
import pytest

from landscape.engine import fused, whole_step as whole
from landscape.experiments import scan, train
from landscape.cli import build_parser, config_of
from landscape.config.settings import ScanConfig, TrainConfig
from landscape.engine.worker import Worker
from landscape.tasks import get_task

needs_compile = pytest.mark.skipif(fused.unavailable() is not None, reason=f"{fused.unavailable()}")

def _scan_plan(*argv):
    cfg = config_of(build_parser().parse_args(["scan", "--task", "tasks_for_tests:tiny", *argv]), ScanConfig)
    return scan.make_plan(cfg, get_task(cfg.task, cfg.task_options))


def _train(cfg: TrainConfig, compiled: bool):
    plan = train.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    logs = []
    notes = []
    step = fused.Step("riemannian" if cfg.fix_norm else "adamw", compiled, cfg.betas, on_note=notes.append)
    state = train.run(plan, plan.members, train.fresh_state(plan, plan.members), step=step,
                      on_checkpoint=lambda st, log: logs.append(log))
    arrays = [log.arrays() for log in logs if len(log)]
    assert not compiled or not any("failed" in n for n in notes), notes
    return state, {k: np.concatenate([a[k] for a in arrays], axis=1) for k in plan.series}


@needs_compile
def test_a_compiled_scan_chunk_equals_the_eager_one():
    plan = _scan_plan("--norms", "0.5:2:3", "--restarts", "2", "--steps", "150", "--history", "50")
    index = np.arange(plan.n_points)
    ref = scan.run_chunk(plan, index, step=fused.Step("riemannian", False))
    got = scan.run_chunk(plan, index, step=fused.Step("riemannian", True))
    for key in ("train_loss", "test_loss", "grad_norm"):
        np.testing.assert_allclose(getattr(got, key), getattr(ref, key), rtol=1e-4, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(got.history[0], ref.history[0], rtol=1e-4, atol=1e-7)
    assert (got.status == ref.status).all() and (got.steps == ref.steps).all()


@needs_compile
def test_a_compiled_sweep_equals_the_eager_one_with_per_member_values_and_minibatches():
    """AdamW on the digits MLP (cross-entropy): per-member lr, weight decay and training share, each member
    drawing minibatches from its own share."""
    cfg = TrainConfig(task="digits", task_options={"n_train": 200, "width": 24}, lr=[0.01, 0.03], weight_decay=[0.0, 0.5],
                      train_frac=[0.5, 1.0], steps=60, log_every=10, batch_size=16, warmup=5, schedule="cosine")
    ref_state, ref = _train(cfg, False)
    got_state, got = _train(cfg, True)
    for key in ("norm", "train_loss", "test_loss", "train_acc"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, atol=1e-6, err_msg=key)
    _close_vectors(got_state.theta, ref_state.theta)


def _close_vectors(got, ref, rtol=1e-4):
    """Each member's parameters agree to ``rtol`` of their norm: a coordinate whose gradient is near zero may
    take Adam's step with either sign after a rounding difference, the vector as a whole may not move."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert (np.linalg.norm(got - ref, axis=-1) <= rtol * np.linalg.norm(ref, axis=-1)).all()


@needs_compile
def test_compiled_norm_fixed_training_equals_the_eager_one_and_holds_the_norm():
    cfg = TrainConfig(task="tasks_for_tests:tiny", fix_norm=True, weight_decay=[0.0, 1.0], steps=80, log_every=20)
    ref_state, ref = _train(cfg, False)
    got_state, got = _train(cfg, True)
    np.testing.assert_allclose(got["train_loss"], ref["train_loss"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["norm"], ref["norm"], rtol=1e-5)
    _close_vectors(got_state.theta, ref_state.theta)


@needs_compile
def test_branch_norms_share_one_compilation():
    """A continuation branch builds a new worker per norm: the compiled function is found again by value."""
    import torch._dynamo.utils as dyn

    plan = _scan_plan("--norms", "0.5:2:4", "--steps", "20")
    notes = []
    step = fused.Step("riemannian", True, on_note=notes.append)
    warm = None
    before = dyn.counters["stats"]["unique_graphs"]
    for k in range(4):
        warm = scan.run_branch_step(plan, np.array([k]), warm, step=step).params
    assert dyn.counters["stats"]["unique_graphs"] - before <= 1
    assert len([n for n in notes if "compiled the whole" in n]) <= 1  # none when an earlier test compiled it


def test_the_loop_engine_and_the_eager_step_are_not_compiled_whole():
    plan = _scan_plan("--steps", "5")
    assert not whole.WholeStep(fused.Step("riemannian", False), Worker(plan.task, plan.module, plan.layout)).whole
    loop = Worker(plan.task, plan.module, plan.layout, engine="loop")
    assert loop.ensemble.batched is None
    assert not whole.WholeStep(fused.Step("riemannian", True), loop).whole
    assert whole.planned(_scan_plan("--engine", "loop"), 4) is None


@needs_compile
def test_the_vmap_engine_compiles_whole_agrees_and_shares_one_compilation_across_norms():
    """Any model: ``vmap(grad(...))`` and the optimizer step traced as one function."""
    import torch._dynamo.utils as dyn

    plan = _scan_plan("--norms", "0.5:2:3", "--restarts", "2", "--steps", "60", "--engine", "vmap")
    assert whole.planned(plan, plan.n_points) == "vmap"
    index = np.arange(plan.n_points)
    ref = scan.run_chunk(plan, index, step=fused.Step("riemannian", False))
    notes = []
    step = fused.Step("riemannian", True, on_note=notes.append)
    got = scan.run_chunk(plan, index, step=step)
    assert any("compiled the whole" in n for n in notes) and not any("failed" in n for n in notes), notes
    for key in ("train_loss", "test_loss", "grad_norm"):
        np.testing.assert_allclose(getattr(got, key), getattr(ref, key), rtol=1e-4, atol=1e-7, err_msg=key)
    warm, before = None, dyn.counters["stats"]["unique_graphs"]
    for k in range(3):  # a new worker (and model copy) per norm
        warm = scan.run_branch_step(plan, np.array([2 * k, 2 * k + 1]), warm, step=step).params
    assert dyn.counters["stats"]["unique_graphs"] - before <= 1


@needs_compile
def test_a_compiled_vmap_sweep_with_training_shares_equals_the_eager_one():
    cfg = TrainConfig(task="tasks_for_tests:tiny", engine="vmap", weight_decay=[0.0, 1.0], train_frac=[0.5, 1.0],
                      steps=60, log_every=20)
    ref_state, ref = _train(cfg, False)
    got_state, got = _train(cfg, True)
    for key in ("norm", "train_loss", "test_loss"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, atol=1e-6, err_msg=key)
    _close_vectors(got_state.theta, ref_state.theta)


def test_a_whole_step_whose_compilation_fails_goes_on_with_the_two_calls(monkeypatch):
    def broken(*args):
        raise RuntimeError("inductor: C++ compile error")

    monkeypatch.setattr(whole, "_compiled", lambda kind, chain, betas: broken)
    monkeypatch.setattr(fused, "_compiled", lambda kind: broken)  # the optimizer alone fails too: eager
    plan = _scan_plan("--norms", "1:2:2", "--steps", "30")
    notes = []
    got = scan.run_chunk(plan, np.arange(2), step=fused.Step("riemannian", True, on_note=notes.append))
    ref = scan.run_chunk(plan, np.arange(2), step=fused.Step("riemannian", False))
    np.testing.assert_array_equal(got.train_loss, ref.train_loss)
    assert any("whole" in n and "failed" in n for n in notes), notes


def test_auto_compiles_where_the_expected_saving_repays_compilation():
    assert fused.saving(0, 20000, whole="mlp") >= fused.AUTO_SAVING  # a branch scan's many small steps
    assert fused.saving(0, 20000, whole="vmap") >= fused.AUTO_SAVING
    assert fused.saving(0, 20000, whole=None) < fused.AUTO_SAVING  # the optimizer alone saves per element
    assert fused.saving(4e8, 1000, whole="mlp") < fused.AUTO_SAVING  # the README's first scan stays eager
    plan = _scan_plan("--steps", "100")
    assert not scan.stepper(plan).compiled  # a short scan
    both = _scan_plan("--branch", "both", "--norms", "0.5:2:40", "--steps", "2000")
    assert both.config.compile == "auto"
    assert scan.stepper(both).compiled == (fused.unavailable() is None)


def test_large_steps_keep_the_eager_gradient():
    """Compiled whole, large products ran slower than eager (digits): only small steps are compiled whole."""
    assert whole.pays(34 * 6 * 100 * 11205)  # teacher-student, a full scan chunk
    assert not whole.pays(32 * 6 * 1000 * 55210)  # digits
    digits = config_of(build_parser().parse_args(["scan", "--task", "digits", "--norms", "0.5:2:32",
                                                  "--compile", "on"]), ScanConfig)
    plan = scan.make_plan(digits, get_task("digits"))
    worker = Worker(plan.task, plan.module, plan.layout)
    step = whole.WholeStep(fused.Step("riemannian", False), worker)
    theta = scan.start(plan, np.arange(2))[1]
    calls = []
    worker.grad = lambda th, idx: calls.append(th.shape) or (th * 0, th[:, 0])  # the eager path is taken
    step.fn = lambda *a: pytest.fail("compiled whole")
    big = theta.repeat(16, 1)  # 32 members: above MAX_FLOP
    from landscape.engine import optim
    step(big, optim.AdamState.zeros_like(big), None, 0.01, torch.ones(32))
    assert calls == [big.shape]

"""The batched (vmap) engine against the one-point-at-a-time autograd reference."""

import numpy as np
import pytest
import torch

from landscape.engine import worker as loop
from landscape.experiments import scan
from landscape.status import Status
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task

FIELDS = ["train_loss", "test_loss", "train_acc", "test_acc"]


@pytest.mark.parametrize("task, options, batch_size, method", [
    ("teacher-student", {}, None, "riemannian"),
    ("teacher-student", {}, 16, "project"),
    ("modular", {"p": 11}, None, "riemannian"),
    ("digits", {"n_train": 200}, 32, "riemannian"),
])
def test_vmap_equals_loop(task, options, batch_size, method):
    cfg = ScanConfig(task=task, norms="0.3:3:3:log", steps=40, lr=0.01, restarts=2,
                     batch_size=batch_size, history=10, method=method)
    plan = scan.make_plan(cfg, get_task(task, options))
    points = np.arange(plan.n_points)
    a = scan.run_chunk(plan, points, engine="vmap")
    b = scan.run_chunk(plan, points, engine="loop")
    for name in FIELDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-7, err_msg=name)
    # the gradient at the final iterate is small, so rounding in the iterate shows up in it most
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=3e-2, atol=1e-6)
    np.testing.assert_allclose(a.history[0], b.history[0], rtol=1e-4, atol=1e-7)
    assert (a.status == Status.DONE).all() and (b.status == Status.DONE).all()
    # the optimization did something: the loss moved from its starting value
    assert np.all(a.history[0][:, -1] < a.history[0][:, 0])


def test_chunking_does_not_change_results():
    cfg = ScanConfig(norms="0.3:3:4:log", steps=30, restarts=2, batch_size=20)
    plan = scan.make_plan(cfg, get_task("teacher-student"))
    whole = scan.run_chunk(plan, np.arange(8))
    parts = scan.concat([scan.run_chunk(plan, c) for c in loop.chunks(np.arange(8)[::-1].copy(), 3)])
    order = np.argsort(parts.index)
    np.testing.assert_allclose(parts.train_loss[order], whole.train_loss, rtol=1e-5)


def test_restarts_differ_and_seed_reproduces():
    cfg = ScanConfig(norms="1", steps=20, restarts=3)
    plan = scan.make_plan(cfg, get_task("teacher-student"))
    a = scan.run_chunk(plan, np.arange(3))
    assert len(set(np.round(a.train_loss, 12))) == 3
    b = scan.run_chunk(scan.make_plan(cfg, get_task("teacher-student")), np.arange(3))
    np.testing.assert_array_equal(a.train_loss, b.train_loss)


def test_nan_in_one_point_marks_it_diverged_and_others_finish():
    cfg = ScanConfig(task="tasks_for_tests:explosive", norms="0.5,1,40", steps=20, restarts=1)
    plan = scan.make_plan(cfg, get_task(cfg.task))
    r = scan.run_chunk(plan, np.arange(3))
    assert r.status.tolist() == [Status.DONE, Status.DONE, Status.DIVERGED]
    assert np.isfinite(r.train_loss[:2]).all()
    assert r.steps.tolist()[:2] == [20, 20] and r.steps[2] == 0


def test_absolute_norms():
    cfg = ScanConfig(norms="2,4", absolute=True, steps=5)
    plan = scan.make_plan(cfg, get_task("teacher-student"))
    assert plan.norm.tolist() == [2.0, 4.0]
    np.testing.assert_allclose(plan.alpha * plan.w0, plan.norm)


def test_the_loop_engine_logs_metrics_of_a_model_vmap_cannot_batch(tmp_path):
    """An LSTM has no vmap batching rule: on the loop engine its trajectories' metrics (the probe's forward pass
    included) are computed one member after the other, and equal vmap's where vmap works."""
    from landscape import store
    from landscape.cli import main
    from landscape.engine.ensemble import Ensemble, functional_forward
    from landscape.tasks import get_task
    from landscape.tasks.contract import Probe

    out = tmp_path / "l.h5"
    assert main(["train", "--task", "tasks_for_tests:lstm", "--engine", "loop", "--steps", "10", "--log-every", "5",
                 "--weight-decay", "0,0.1", "--quiet", "--out", str(out)]) == 0
    for t in store.read_trajectories(out):
        assert np.isfinite(t["train_loss"]).all() and np.isfinite(t["probe_r2"]).all()
    task = get_task("tasks_for_tests:tiny")
    module, layout, _, _ = loop.model_of(task, "*", "vmap", 0)
    theta = torch.randn(3, layout.size)
    batched = functional_forward(module, layout, theta, task.x_train, Probe("2"))
    one_by_one = Ensemble(task, module, layout, "loop").forward(theta, task.x_train, Probe("2"))
    torch.testing.assert_close(batched[0], one_by_one[0])
    torch.testing.assert_close(batched[1], one_by_one[1])

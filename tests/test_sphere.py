import numpy as np
import pytest
import torch

from landscape.config import schedule
from landscape.engine import optim, sphere
from landscape.experiments import scan
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(5, 40, generator=g, dtype=torch.float64)
    vec = torch.randn(5, 40, generator=g, dtype=torch.float64)
    mask = torch.zeros(40, dtype=torch.float64)
    mask[:30] = 1
    return theta, vec, mask


def test_tangent_has_no_radial_component(batch):
    theta, vec, mask = batch
    t = sphere.tangent(theta, vec, mask)
    radial = (t * theta * mask).sum(-1)
    assert torch.allclose(radial, torch.zeros(5, dtype=torch.float64), atol=1e-12)
    # free coordinates are untouched, and projecting twice changes nothing
    assert torch.equal(t[:, 30:], vec[:, 30:])
    assert torch.allclose(sphere.tangent(theta, t, mask), t, atol=1e-12)
    # the removed part is parallel to theta_c
    removed = (vec - t)[:, :30]
    cos = (removed * theta[:, :30]).sum(-1) / (removed.norm(dim=-1) * theta[:, :30].norm(dim=-1))
    assert torch.allclose(cos.abs(), torch.ones(5, dtype=torch.float64))


def test_retract_sets_norm_and_keeps_direction(batch):
    theta, _, mask = batch
    target = torch.linspace(0.5, 3.0, 5, dtype=torch.float64)
    r = sphere.retract(theta, target, mask)
    assert torch.allclose(sphere.constrained_norm(r, mask), target)
    assert torch.equal(r[:, 30:], theta[:, 30:])
    ratio = r[:, :30] / theta[:, :30]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))


@pytest.mark.parametrize("method", sorted(optim.METHODS))
def test_optimizer_steps_stay_on_sphere(method, batch):
    theta, _, mask = batch
    theta, mask = theta.float(), mask.float()
    target = torch.tensor([0.1, 1.0, 5.0, 30.0, 100.0])
    theta = sphere.retract(theta, target, mask)
    state = optim.AdamState.zeros_like(theta)
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        grad = 10 * torch.randn(theta.shape, generator=g)
        theta, state = optim.METHODS[method].step(theta, grad, state, 0.1, target, mask)
        rel = (sphere.constrained_norm(theta, mask) - target).abs() / target
        assert rel.max() < 1e-5


@pytest.mark.parametrize("method, constrain", [("riemannian", "*"), ("project", "*"), ("riemannian", "*weight")])
def test_scan_constraint_holds_after_every_step(method, constrain):
    cfg = ScanConfig(norms="0.1:10:4:log", steps=30, lr=0.05, restarts=2, method=method, constrain=constrain)
    plan = scan.make_plan(cfg, get_task("teacher-student"))
    mask = plan.layout.mask()
    worst = []

    def check(step, theta, target):
        worst.append(float(((sphere.constrained_norm(theta, mask) - target).abs() / target).max()))

    scan.run_chunk(plan, np.arange(plan.n_points), on_step=check)
    assert len(worst) == cfg.steps
    assert max(worst) < 1e-5
    if constrain == "*weight":
        assert not all(plan.layout.constrained)


def test_riemannian_moment_is_tangent():
    theta = sphere.retract(torch.randn(3, 20), torch.ones(3), torch.ones(20))
    state = optim.AdamState.zeros_like(theta)
    theta, state = optim.riemannian_adam_step(theta, torch.randn(3, 20), state, 0.1, torch.ones(3), torch.ones(20))
    assert torch.allclose((state.m * theta).sum(-1), torch.zeros(3), atol=1e-6)


def test_cosine_schedule():
    assert schedule.cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert schedule.cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert schedule.cosine_lr(0.1, 100, 100) == pytest.approx(0.0)

"""The same code path on a GPU (skipped where CUDA is absent)."""

import numpy as np
import pytest
import torch

from landscape.experiments import scan
from landscape.engine import sphere
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


@pytest.mark.parametrize("engine", ["mlp", "vmap"])
@pytest.mark.parametrize("task, options, batch_size", [("teacher-student", {}, None), ("digits", {"n_train": 300}, 64)])
def test_cuda_ensemble_matches_cpu_loop(task, options, batch_size, engine):
    cfg = ScanConfig(task=task, norms="0.3:3:3:log", steps=30, restarts=2, batch_size=batch_size)
    plan = scan.make_plan(cfg, get_task(task, options))
    mask = plan.layout.mask("cuda")
    worst = []
    gpu = scan.run_chunk(plan, np.arange(plan.n_points), device="cuda", engine=engine,
                         on_step=lambda t, th, tg: worst.append(float(((sphere.constrained_norm(th, mask) - tg).abs() / tg).max())))
    cpu = scan.run_chunk(plan, np.arange(plan.n_points), device="cpu", engine="loop")
    np.testing.assert_allclose(gpu.train_loss, cpu.train_loss, rtol=1e-3)
    np.testing.assert_allclose(gpu.test_loss, cpu.test_loss, rtol=1e-3)
    assert max(worst) < 1e-5

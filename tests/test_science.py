"""The reduced landscape has Omnigrok's shape on the teacher-student task (a real, small run)."""

import numpy as np

from landscape.experiments import scan
from landscape.status import Status
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task


def test_teacher_student_has_L_and_U():
    cfg = ScanConfig(task="teacher-student", norms="0.1:10:9:log", steps=600, lr=0.01)
    plan = scan.make_plan(cfg, get_task(cfg.task))
    r = scan.run_chunk(plan, np.arange(plan.n_points))
    assert (r.status == Status.DONE).all()
    train, test = r.train_loss, r.test_loss
    # L: the smallest norm cannot fit, the largest memorizes
    assert train[-1] < train[0] / 100, train
    # U: both ends generalize worse than the interior minimum
    inner = test[1:-1].min()
    assert test[0] > 3 * inner and test[-1] > 3 * inner, test
    # the Goldilocks norm is near the teacher's own scale, not at an edge
    assert 0.2 < plan.alpha[np.argmin(test)] < 3

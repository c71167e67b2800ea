"""Liu et al.'s effective theory: the Hessian from the parallelograms of a training set, its spectrum, the exact
effective dynamics, the leave-one-out prediction; the toy addition task and per-group learning rates."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from landscape.analysis import effective as ef
from landscape.config.settings import TrainConfig, resolve
from landscape.experiments import train
from landscape.tasks import get_task


def _brute(a, b, p, modular):
    rows = []
    for s, t in itertools.combinations(range(len(a)), 2):
        if ((a[s] + b[s]) - (a[t] + b[t])) % (p if modular else 10 ** 9) == 0:
            v = np.zeros(p)
            v[a[s]] += 1
            v[b[s]] += 1
            v[a[t]] -= 1
            v[b[t]] -= 1
            rows.append(v)
    A = np.array(rows).reshape(-1, p)
    return 2 * A.T @ A, len(rows)


def test_hessian_of_a_small_training_set_by_hand():
    # (0, 3) and (1, 2) share the sum 3: one parallelogram, E0 - E1 - E2 + E3; (1, 1) and (0, 2): 2 E1 - E0 - E2
    H = ef.hessian(np.array([0, 1, 1, 0]), np.array([3, 2, 1, 2]), 4, False)
    r1, r2 = np.array([1, -1, -1, 1.0]), np.array([-1, 2, -1, 0.0])
    assert np.allclose(H, 2 * (np.outer(r1, r1) + np.outer(r2, r2)))
    assert ef.parallelograms(np.array([0, 1, 1, 0]), np.array([3, 2, 1, 2]), 4, False) == 2


@pytest.mark.parametrize("modular", [False, True])
def test_hessian_equals_the_sum_over_listed_parallelograms(modular):
    rng = np.random.default_rng(1)
    p = 7
    a, b = rng.integers(0, p, 30), rng.integers(0, p, 30)
    H, n = _brute(a, b, p, modular)
    assert np.allclose(ef.hessian(a, b, p, modular), H)
    assert ef.parallelograms(a, b, p, modular) == n


def test_lambda_3_is_zero_below_and_positive_above_a_constructed_critical_split():
    # p = 4: (0,2),(1,1) pin E0 + E2 = 2 E1; (1,3),(2,2) pin E1 + E3 = 2 E2: with both, E_k = a + b k is the only
    # solution (null space 2); without (2, 2) the second relation is missing (null space 3)
    below = ef.spectrum(np.array([0, 1, 1]), np.array([2, 1, 3]), 4, False)
    above = ef.spectrum(np.array([0, 1, 1, 2]), np.array([2, 1, 3, 2]), 4, False)
    assert below.null_dim == 3 and below.lam is None and "below the critical fraction" in below.reason
    assert above.null_dim == 2 and above.lam > 0 and above.reason is None and above.name == "lambda_3"
    # the linear structure is in the null space: l_0(a + b k) = 0
    k = np.arange(4.0)
    H = ef.hessian(np.array([0, 1, 1, 2]), np.array([2, 1, 3, 2]), 4, False)
    assert abs((3 + 2 * k) @ H @ (3 + 2 * k)) < 1e-9


def test_modular_addition_keeps_only_the_rotation_and_circles_are_not_linear_solutions():
    p = 7
    a, b = (g.ravel() for g in np.meshgrid(np.arange(p), np.arange(p)))
    spec = ef.spectrum(a, b, p, True)
    assert spec.null_dim == 1 == spec.ideal_null_dim and spec.lam > 0 and spec.name == "lambda_2"
    k = np.arange(p)
    circle = np.stack([np.cos(2 * np.pi * k / p), np.sin(2 * np.pi * k / p)], 1)
    assert np.trace(circle.T @ ef.hessian(a, b, p, True) @ circle) > 1  # not a zero of l_0 in the embeddings


def test_effective_path_matches_euler_steps_of_the_gradient_flow():
    rng = np.random.default_rng(0)
    p, d, eta = 6, 2, 1e-3
    a, b = rng.integers(0, p, 14), rng.integers(0, p, 14)
    H = ef.hessian(a, b, p, False)
    E = rng.standard_normal((p, d))
    E -= E.mean(0)
    exact = ef.path(H, E, eta, np.array([0, 400, 4000]))
    x = E.copy()
    for _ in range(4000):
        Z = (x ** 2).sum()
        l0 = np.trace(x.T @ H @ x) / 2
        x = x - eta * (H @ x / Z - 2 * l0 * x / Z ** 2)
    assert np.allclose(exact[0], E)
    assert np.allclose(exact[2], x, atol=2e-3 * np.abs(x).max())
    assert np.isclose((exact[1] ** 2).sum(), (E ** 2).sum())  # Z_0 is conserved


def test_leave_one_out_prediction_uses_only_the_other_runs():
    lam = np.array([1.0, 2.0, 4.0, 8.0])
    t = 100 / lam
    fit = ef.loo_fit(list("abcd"), lam, t)
    assert np.allclose(fit.predicted, t) and fit.slope == pytest.approx(-1) and fit.slope_se < 1e-9
    assert fit.worst_ratio == pytest.approx(1)
    t2 = t.copy()
    t2[0] *= 8  # run a groks 8x later than the others' c says; its own value must not enter its prediction
    fit = ef.loo_fit(list("abcd"), lam, t2)
    assert fit.predicted[0] == pytest.approx(100)
    c_without_b = np.exp(np.mean(np.log([800, 100, 100])))
    assert fit.predicted[1] == pytest.approx(c_without_b / 2)
    # below the critical fraction (no lambda) or never grokked: left out of the fit
    fit = ef.loo_fit(list("abc"), [np.nan, 1.0, 2.0], [10.0, np.nan, 50.0])
    assert fit.names == ["c"] and np.isnan(fit.predicted).all()


def test_critical_fraction():
    assert ef.critical_fraction([0.2, 0.4, 0.6, 0.8], [None, 0.0, 1.0, 2.0]) == 0.6
    assert ef.critical_fraction([0.2, 0.4], [None, None]) is None


def _addition(**flags):
    return resolve(TrainConfig, flags={"task": "addition", "steps": 15, "log_every": 5, "group": "embed",
                                       **flags}, task_options=[("width", "16")])


def _final(cfg):
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    state = train.run(plan, plan.members, train.fresh_state(plan, plan.members))
    return {m.name: state.theta[i] for i, m in enumerate(plan.members)}, plan


def test_toy_task_ensemble_equals_one_member_at_a_time():
    together, plan = _final(_addition(train_frac=[0.5, 1.0], seeds=[0, 1], group_lr=[1e-3, 3e-3], lr=[1e-4]))
    assert len(together) == 8
    for m in plan.members:
        alone, _ = _final(_addition(train_frac=[m.train_frac], seeds=[m.seed], group_lr=[m.group_lr], lr=[m.lr]))
        (theta,) = alone.values()
        assert torch.allclose(together[m.name], theta, rtol=1e-5, atol=1e-6), m.name


def test_group_rates_reach_their_parameters_only():
    frozen, plan = _final(_addition(group_lr=[1e-30], lr=[1e-2]))
    (theta,) = frozen.values()
    start = train.initial_theta(plan, plan.members[0])
    emb = plan.layout.names_mask(["embed"]) > 0
    assert torch.allclose(theta[emb], start[emb])  # the group's rate: no move
    assert not torch.allclose(theta[~emb], start[~emb])  # the decoder trains at --lr
    decayed, plan = _final(_addition(group_lr=[1e-30], lr=[1e-6], group_weight_decay=[0.0], weight_decay=[1e5]))
    (theta,) = decayed.values()
    assert torch.allclose(theta[emb], start[emb]) and not torch.allclose(theta[~emb], start[~emb])


def test_spectrum_is_stored_per_trajectory_and_read_back(tmp_path):
    cfg = _addition(train_frac=[0.3, 1.0])
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    low, high = (plan.effective[m.name] for m in plan.members)
    assert np.isnan(low["effective_lambda"]) and low["effective_null_dim"] > 2  # 14 pairs: below the critical one
    assert high["effective_lambda"] > 0 and high["effective_null_dim"] == 2 and high["effective_lambda_index"] == 3
    assert "effective_rqi" in plan.series and "fourier_concentration" not in plan.series


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "landscape", *args], capture_output=True, text=True, cwd=cwd)


def test_effective_theory_end_to_end_and_refusals(tmp_path):
    r = _cli("train", "--task", "addition", "--task-opt", "width=16", "--group", "embed", "--group-lr", "1e-3",
             "--train-frac", "0.3,1", "--steps", "30", "--log-every", "10", "--out", "a.h5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("analyze", "a.h5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "effective theory (Liu et al. 2022)" in r.stdout and "lambda_3" in r.stdout
    row = next(line for line in r.stdout.splitlines() if "frac0.3" in line and "below" in line)
    assert row  # below the critical fraction: reported, no prediction
    r = _cli("train", "--task", "teacher-student", "--metrics", "effective_rqi", "--steps", "3", "--out", "t.h5",
             cwd=tmp_path)
    assert r.returncode == 2 and "addition task" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.h5").exists()
    r = _cli("train", "--task", "addition", "--group-lr", "1e-3", "--steps", "3", "--out", "g.h5", cwd=tmp_path)
    assert r.returncode == 2 and "--group GLOB" in r.stderr
    r = _cli("train", "--task", "addition", "--group", "nothing*", "--steps", "3", "--out", "g.h5", cwd=tmp_path)
    assert r.returncode == 2 and "matches no parameter" in r.stderr


def test_effective_rqi_starts_at_the_networks_rqi_and_the_ideal_accuracy_counts_unseen_sums(tmp_path):
    import h5py

    r = _cli("train", "--task", "addition", "--task-opt", "width=16", "--group", "embed", "--group-lr", "1e-2",
             "--steps", "40", "--log-every", "10", "--out", "a.h5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "a.h5") as f:
        g = f["trajectories/wd0_init1_seed0"]
        # step 0: the effective path is the standardized initial embedding; RQI ignores shift and scale (d = 1)
        assert g["effective_rqi"][0] == g["rqi"][0]
        ideal = float(g.attrs["effective_ideal_test_acc"])
    task = get_task("addition")  # seed 0: two of the ten test sums occur in no training pair
    train_sums = set((task.x_train.sum(1)).tolist())
    assert ideal == np.mean([s in train_sums for s in task.x_test.sum(1).tolist()]) == 0.8


def test_phase_diagram_over_the_group_rate_stores_lambda_per_cell(tmp_path):
    from landscape import store

    r = _cli("phases", "--task", "addition", "--task-opt", "width=16", "--group", "embed", "--x",
             "group-lr=1e-3,1e-2", "--y", "train-frac=0.3,1", "--steps", "20", "--log-every", "10", "--out", "p.h5",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "effective theory (Liu et al. 2022)" in r.stdout and "0.3: below" in r.stdout
    grid = store.read_phases(tmp_path / "p.h5")
    lam = grid["effective_lambda"]
    assert lam.shape == (2, 2) and np.isnan(lam[:, 0]).all() and (lam[:, 1] > 0).all()
    assert grid["x_axis"] == "group-lr"
    names = set(grid["trajectory"].ravel())
    assert any("glr0.001" in n for n in names) and any("glr0.01" in n for n in names)


def test_late_times_of_the_path_stay_finite_when_the_slowest_mode_is_absent():
    p = 7
    a, b = (g.ravel() for g in np.meshgrid(np.arange(p), np.arange(p)))
    E = np.random.default_rng(0).standard_normal((p, 2))
    late = ef.path(ef.hessian(a, b, p, True), E, 1e-3, np.array([1e7]))[0]  # centred E0 has no constant mode
    assert np.isfinite(late).all() and np.isclose((late ** 2).sum(), ((E - E.mean(0)) ** 2).sum())


def test_a_group_rate_axis_needs_the_group():
    from landscape.config.phases import PhasesConfig
    from landscape.config.settings import ConfigError

    with pytest.raises(ConfigError, match="needs --group"):
        resolve(PhasesConfig, flags={"task": "addition", "x": "group-lr=1e-3,1e-2", "y": "lr=1e-4,1e-3"})


def test_a_task_whose_targets_its_sums_do_not_decide_gets_no_spectrum():
    from landscape.metrics import effective as theory
    from landscape.tasks import Task, mse

    task = get_task("addition")
    assert theory.needs(task) is None
    y = torch.randn(len(task.y_train), 30, generator=torch.Generator().manual_seed(0))  # not a function of a + b
    other = Task("shuffled", task.model, task.x_train, y, task.x_test, task.y_test, loss=mse,
                 structure=task.structure)
    why = theory.needs(other)
    assert why is not None and "different targets" in why
    cfg = _addition()
    assert train.make_plan(cfg, other).effective == {}  # nothing stored, rather than a lambda of another task

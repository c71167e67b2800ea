"""landscape.analysis on synthetic curves with known answers (no torch, no files)."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from landscape import analysis as A
from landscape.analysis.trajectory import _schedule


def make_scan(norm, train, test, *, status=None, train_acc=None, classification=False, task="synthetic", w0=1.0):
    """A dict shaped like ``store.read_scan``'s; 1-D curves become one restart."""
    norm = np.asarray(norm, dtype=float)
    train = np.asarray(train, dtype=float).reshape(len(norm), -1)
    test = np.asarray(test, dtype=float).reshape(len(norm), -1)
    K, R = train.shape
    nan = np.full((K, R), np.nan)
    acc = nan if train_acc is None else np.asarray(train_acc, dtype=float).reshape(K, R)
    return {
        "alpha": norm / w0, "norm": norm, "train_loss": train, "test_loss": test,
        "train_acc": acc, "test_acc": nan.copy(), "grad_norm": np.zeros((K, R)),
        "steps": np.full((K, R), 1000), "status": np.ones((K, R), np.int8) if status is None else status,
        "w0": w0, "classification": classification, "task": task,
        "config": {"task": task, "task_options": {"seed": 0}, "constrain": "*", "norms": "synthetic"},
    }


def make_traj(step, cnorm, train, test, *, wd=0.1, lr=1e-3, init=8.0, seed=0, train_acc=None, test_acc=None,
              classification=False, status="done", task="synthetic", name=None):
    """A dict shaped like one item of ``store.read_trajectories``."""
    step = np.asarray(step, dtype=np.int64)
    n = len(step)
    nan = np.full(n, np.nan)

    def series(x):
        return np.broadcast_to(np.asarray(x, dtype=float), (n,)).copy()

    return {
        "name": name or f"wd{wd:g}_init{init:g}_seed{seed}", "batch_size": 0, "checkpoint_step": int(step[-1]),
        "classification": classification, "init_scale": init, "lr": lr, "seed": seed, "status": status,
        "steps": int(step[-1]), "weight_decay": wd,
        "config": {"task": task, "task_options": {"seed": 0}, "constrain": "*", "lr": lr},
        "step": step, "norm": series(cnorm), "constrained_norm": series(cnorm),
        "train_loss": series(train), "test_loss": series(test),
        "train_acc": nan.copy() if train_acc is None else series(train_acc),
        "test_acc": nan.copy() if test_acc is None else series(test_acc),
    }


# ---------------------------------------------------------------- the L: critical norm

GRID = np.geomspace(0.5, 20, 13)


def power_L(w, knee=2.0, plateau=0.1, power=4.0):
    """Train loss = plateau below ``knee``, falling as (w / knee)^-power above it."""
    w = np.asarray(w, dtype=float)
    return np.where(w < knee, plateau, plateau * (w / knee) ** -power)


def u_curve(w, center=1.5, a=2.0, floor=1e-3):
    """Test loss parabolic in log-log: floor * exp(a (ln w - ln center)^2)."""
    return floor * np.exp(a * (np.log(np.asarray(w, dtype=float)) - math.log(center)) ** 2)


def test_knee_of_power_law_L_is_exact_with_one_grid_step_of_uncertainty():
    scan = make_scan(GRID, power_L(GRID), u_curve(GRID))
    est = A.critical_norm(scan)  # default: 1e-2 x the plateau = 1e-3, reached at (w/2)^-4 = 1e-2
    true = 2 * 10 ** 0.5
    assert est.reason is None
    assert est.value == pytest.approx(true, rel=1e-9)  # log-log interpolation is exact on a power law
    assert est.low <= true <= est.high
    step = math.log(GRID[1] / GRID[0])
    assert math.log(est.high / est.low) == pytest.approx(step)  # one restart: half a grid step each side


def test_default_knee_threshold_is_relative_to_the_small_norm_plateau():
    for plateau in (1e-4, 0.1, 100.0):  # the loss's units do not move the knee
        est = A.critical_norm(make_scan(GRID, power_L(GRID, plateau=plateau), u_curve(GRID)))
        assert est.value == pytest.approx(2 * 10 ** 0.5, rel=1e-9), plateau
    est = A.critical_norm(make_scan(GRID, power_L(GRID), u_curve(GRID)), A.Criteria(train_loss_rel=0.1))
    assert est.value == pytest.approx(2 * 10 ** 0.25, rel=1e-9)


def test_knee_absolute_threshold_and_inexact_interpolation_stay_within_uncertainty():
    w = np.linspace(1, 12, 12)  # linear grid; exponential fall is not straight in log-log
    train = np.where(w < 2, 0.1, 0.1 * np.exp(-(w - 2)))
    scan = make_scan(w, train, u_curve(w))
    for thr in (1e-2, 1e-3, 3e-4):
        est = A.critical_norm(scan, A.Criteria(train_loss=thr))
        true = 2 + math.log(0.1 / thr)
        assert est.low <= true <= est.high, (thr, est)
        assert abs(est.value - true) < 0.5  # better than half the grid step (1.0)


def test_knee_interval_spans_the_restarts():
    knees = [1.6, 2.0, 2.5]  # three restarts whose L bends at different norms
    train = np.stack([power_L(GRID, knee=k) for k in knees], axis=1)
    test = np.stack([u_curve(GRID)] * 3, axis=1)
    est = A.critical_norm(make_scan(GRID, train, test))
    crossings = [k * 10 ** 0.5 for k in knees]
    assert est.value == pytest.approx(crossings[0], rel=1e-9)  # the best restart is the earliest to fit
    assert est.low <= crossings[0] and est.high == pytest.approx(crossings[-1], rel=1e-9)  # the worst restart


def test_knee_ignores_diverged_points():
    train = power_L(GRID)
    train[1] = 1e-12  # a diverged point with a bogus tiny loss must not count
    status = np.ones((len(GRID), 1), np.int8)
    status[1] = 2
    est = A.critical_norm(make_scan(GRID, train, u_curve(GRID), status=status))
    assert est.value == pytest.approx(2 * 10 ** 0.5, rel=1e-9)


def test_no_point_below_threshold_is_a_reason_not_an_exception():
    flat = np.full(len(GRID), 0.1)
    est = A.critical_norm(make_scan(GRID, flat, u_curve(GRID)))
    assert est.value is None and est.reason.startswith("no point meets train loss <= 0.001")
    est = A.critical_norm(make_scan(GRID, power_L(GRID), u_curve(GRID)), A.Criteria(train_loss=1.0))
    assert est.value is None and "below the grid" in est.reason and est.high == GRID[0]


def test_classification_knee_uses_train_accuracy_unless_told_otherwise():
    w = 2.0 ** np.arange(0, 2.01, 0.25)  # 1 .. 4
    acc = np.clip(0.5 + 0.25 * np.log2(w), 0, 1)  # linear in log w: 0.99 at log2 w = 1.96
    train = power_L(w, knee=1.0)
    scan = make_scan(w, train, u_curve(w), train_acc=acc, classification=True)
    assert A.critical_norm(scan).value == pytest.approx(2 ** 1.96, rel=1e-9)
    by_loss = A.critical_norm(scan, A.Criteria(accuracy=False))
    assert by_loss.value == pytest.approx(10 ** 0.5, rel=1e-9)


# ---------------------------------------------------------------- the U: minimum and Goldilocks zone

UGRID = np.geomspace(0.1, 10, 17)


def test_test_minimum_parabola_in_log_is_found_between_grid_points():
    scan = make_scan(UGRID, power_L(UGRID, knee=0.2), u_curve(UGRID, center=1.5))
    est = A.min_test_loss_norm(scan)
    assert est.value == pytest.approx(1.5, rel=1e-9)
    assert est.low <= 1.5 <= est.high
    k = int(np.argmin(u_curve(UGRID)))
    assert est.low < UGRID[k] < est.high


def test_test_minimum_at_grid_edge_is_open_on_that_side():
    scan = make_scan(UGRID, power_L(UGRID, knee=0.2), 1.0 / UGRID)
    est = A.min_test_loss_norm(scan)
    assert est.value == UGRID[-1] and est.high is None and "largest scanned norm" in est.note


def test_goldilocks_zone_of_parabolic_U():
    a = 2.0
    scan = make_scan(UGRID, power_L(UGRID, knee=0.2), u_curve(UGRID, a=a))
    zone = A.goldilocks_zone(scan, factor=10)
    half = math.sqrt(math.log(10) / a)
    lo, hi = 1.5 * math.exp(-half), 1.5 * math.exp(half)
    assert zone.reason is None and not zone.touches_low_edge and not zone.touches_high_edge
    assert zone.low.low <= lo <= zone.low.high and zone.high.low <= hi <= zone.high.high
    step = math.log(UGRID[1] / UGRID[0])
    assert abs(math.log(zone.low.value / lo)) < step / 2 and abs(math.log(zone.high.value / hi)) < step / 2
    assert zone.test_loss_min == pytest.approx(u_curve(UGRID).min())
    assert zone.threshold == pytest.approx(10 * zone.test_loss_min)
    narrow = A.goldilocks_zone(scan, factor=2)
    assert lo < narrow.low.value < narrow.high.value < hi


def test_goldilocks_zone_touching_the_grid_is_flagged_and_a_second_dip_does_not_join():
    low = A.goldilocks_zone(make_scan(UGRID, power_L(UGRID), u_curve(UGRID, center=0.1)), factor=10)
    assert low.reason is None and low.touches_low_edge and not low.touches_high_edge
    assert low.low.low is None and low.low.value == UGRID[0] and "beyond the grid" in low.low.note
    assert low.high.value == pytest.approx(0.1 * math.exp(math.sqrt(math.log(10) / 2)), rel=0.2)
    test = u_curve(UGRID)
    test[-1] = test.min() * 2  # a separate dip at the largest norm
    zone = A.goldilocks_zone(make_scan(UGRID, power_L(UGRID), test), factor=10)
    assert not zone.touches_high_edge and zone.high.value < 5


def test_a_zone_over_the_whole_grid_is_no_zone():
    """A U too flat for the grid (the test loss within 10x its minimum everywhere) locates no edge: no zone."""
    wide = A.goldilocks_zone(make_scan(UGRID, power_L(UGRID), u_curve(UGRID, a=0.1), w0=0.5), factor=10)
    assert wide.low.value is None and wide.high.value is None
    assert wide.low.high == UGRID[0] and wide.high.low == UGRID[-1]  # what the grid says: beyond both ends
    assert wide.touches_low_edge and wide.touches_high_edge
    assert wide.reason == ("test loss stays within 10 x its minimum 0.001 over the whole scanned grid, norms "
                           "0.1 .. 10 (0.2 .. 20 w0); scan a wider norm range")
    assert wide.low.reason == wide.reason and wide.threshold == pytest.approx(10 * u_curve(UGRID, a=0.1).min())
    assert A.goldilocks_zone(make_scan([2.0], [1e-3], [0.5]), factor=10).reason  # one norm: nothing to locate


def classification_scan(test_acc, test_loss=None, w=None):
    """A scan of a classification task: an L that memorizes, the given test accuracies, and a cross-entropy test
    loss that stays near chance (ln 23) by default, as on modular addition before it generalizes."""
    w = UGRID if w is None else w
    scan = make_scan(w, power_L(w, knee=0.2), np.full(len(w), 3.2) if test_loss is None else test_loss,
                     train_acc=np.ones(len(w)), classification=True, task="modular")
    scan["test_acc"] = np.asarray(test_acc, dtype=float).reshape(len(w), 1)
    return scan


def test_classification_zone_is_where_test_accuracy_meets_the_grokking_criterion():
    acc = 0.99 - 0.075 * np.abs(np.log(UGRID / 1.5))  # a tent in log w: 0.9 at ln(w / 1.5) = +-1.2
    scan = classification_scan(acc, test_loss=u_curve(UGRID))
    zone = A.analyze_scan(scan).zone
    assert zone.reason is None and zone.criterion == "test accuracy >= 0.9" and zone.threshold is None
    assert zone.low.value == pytest.approx(1.5 * math.exp(-1.2), rel=1e-9)  # linear in log w: exact
    assert zone.high.value == pytest.approx(1.5 * math.exp(1.2), rel=1e-9)
    assert zone.low.low <= zone.low.value <= zone.low.high
    by_loss = A.analyze_scan(scan, A.Criteria(accuracy=False)).zone  # --no-accuracy: the loss rule
    assert by_loss.criterion == "test loss <= 0.0103 (10 x min 0.00103)" and by_loss.low.value > zone.low.value


def test_cross_entropy_near_chance_everywhere_has_no_zone():
    """The reported case: a classification scan whose test loss stays near chance (within 10x of its minimum over
    the whole grid) and whose test accuracy never generalizes."""
    scan = classification_scan(np.full(len(UGRID), 0.05))
    zone = A.analyze_scan(scan).zone
    assert zone.low.value is None and zone.high.value is None
    assert zone.reason.startswith("no scanned norm reaches test accuracy >= 0.9 (the best is 0.05")
    loss_zone = A.analyze_scan(scan, A.Criteria(accuracy=False)).zone
    assert loss_zone.low.value is None and "stays within 10 x its minimum 3.2 over the whole scanned grid" in \
        loss_zone.reason
    everywhere = A.analyze_scan(classification_scan(np.full(len(UGRID), 0.95))).zone
    assert everywhere.reason.startswith("test accuracy stays >= 0.9 over the whole scanned grid")


# ---------------------------------------------------------------- trajectories and predictions

def test_decay_steps_against_hand_computation_and_simulation():
    n = A.decay_steps(64.0, 8.0, 1e-3, 0.1)
    assert n == pytest.approx(math.log(8) / 1.000050003333583e-4, rel=1e-12)  # -ln(1 - 1e-4), by series
    w, k = 64.0, 0
    while w > 8.0:
        w *= 1 - 1e-4
        k += 1
    assert k == math.ceil(n)
    assert A.decay_steps(5.0, 8.0, 1e-3, 0.1) == 0.0
    with pytest.raises(ValueError):
        A.decay_steps(64.0, 8.0, 1e-3, 0.0)


def test_predict_combines_memorization_step_and_target_interval():
    mem = A.Event("m", A.Estimate(300.0, 290.0, 300.0), norm=64.0)
    grok = A.Event("g", A.Estimate(21000.0, 20900.0, 21000.0), norm=8.0)
    p = A.predict(mem, "w_c", A.Estimate(8.0, 7.0, 9.0), lr=1e-3, weight_decay=0.1, measured=grok)
    q = -math.log(1 - 1e-4)
    assert p.step.value == pytest.approx(300 + math.log(64 / 8) / q)
    assert p.step.low == pytest.approx(300 + math.log(64 / 9) / q)
    assert p.step.high == pytest.approx(300 + math.log(64 / 7) / q)
    assert p.ratio == pytest.approx(21000 / p.step.value)
    no_wd = A.predict(mem, "w_c", A.Estimate(8.0, 7.0, 9.0), lr=1e-3, weight_decay=0.0)
    assert no_wd.step.value is None and "weight decay 0" in no_wd.reason


def test_pure_decay_trajectory_groks_when_predicted():
    """A run that obeys the mechanism exactly: its test loss is the scan's U at its current norm."""
    lr, wd, w_start = 3e-3, 0.1, 70.0
    step = np.arange(0, 20001)
    norm = w_start * (1 - lr * wd) ** step
    train = np.maximum(20 * np.exp(-step / 30.0), 1e-9)  # memorizes within a few hundred steps
    grid = np.geomspace(0.5, 80, 23)
    U = lambda w: u_curve(w, center=5.0, a=0.5)  # noqa: E731
    scan = make_scan(grid, power_L(grid, knee=1.0), U(grid))
    traj = make_traj(step, norm, train, U(norm), wd=wd, lr=lr)
    res = A.analyze(scan, [traj])
    r = res.trajectories[0]
    mem_thr = 1e-2 * 0.1
    t_mem = math.ceil(30 * math.log(20 / mem_thr))
    assert r.memorization.step.value == t_mem and r.memorization.norm == pytest.approx(norm[t_mem])
    true_edge = 5.0 * math.exp(math.sqrt(math.log(10) / 0.5))  # where the U crosses 10 x its minimum
    t_grok = math.ceil(math.log(w_start / true_edge) / -math.log(1 - lr * wd))
    assert r.grokking.step.value == t_grok
    assert r.delay.value == t_grok - t_mem
    zone_pred = next(p for p in r.predictions if p.target == "zone_high")
    assert zone_pred.step.low <= t_grok <= zone_pred.step.high + 1
    assert zone_pred.ratio == pytest.approx(1, abs=0.05)
    star = next(p for p in r.predictions if p.target == "w_star")
    assert star.step.value > t_grok  # the U's bottom lies further down than its edge


def test_never_memorizes_and_never_groks_give_reasons():
    step = np.arange(0, 1001, 10)
    traj = make_traj(step, np.linspace(50, 40, len(step)), 1.0, 1.0, status="running")
    r = A.analyze_trajectory(traj, None, A.Criteria(train_loss=1e-3, test_loss=1e-3))
    assert r.memorization.step.value is None and "never reaches train loss <= 0.001" in r.memorization.step.reason
    assert "still running" in r.memorization.step.reason
    assert r.grokking.step.value is None and "never reaches test loss <= 0.001" in r.grokking.step.reason
    assert r.delay.value is None and r.delay.reason
    assert all(p.reason for p in r.predictions)
    memorizes = make_traj(step, np.linspace(50, 40, len(step)), np.geomspace(1, 1e-6, len(step)), 1.0)
    r = A.analyze_trajectory(memorizes, None, A.Criteria(train_loss=1e-3, test_loss=1e-3))
    assert r.memorization.step.value == 500 and r.memorization.step.low == 490
    assert r.grokking.step.value is None and "stopped at step 1000" in r.grokking.step.reason
    no_threshold = A.analyze_trajectory(memorizes, None)  # regression without a scan or thresholds
    assert "no train-loss threshold" in no_threshold.memorization.step.reason
    assert "no test-loss threshold" in no_threshold.grokking.step.reason


def never_grokking(steps=300, status="done"):
    """A modular-addition run that memorizes at step 14 at norm 30.45 and never generalizes (test accuracy 0.06)."""
    step = np.arange(0, steps + 1)
    return make_traj(step, 30.45 * (1 - 0.01) ** np.maximum(step - 14, 0), 0.1, 20.0, wd=1.0, lr=0.01, init=1.0,
                     classification=True, train_acc=np.where(step >= 14, 1.0, 0.5), test_acc=0.06, status=status,
                     task="modular")


def test_a_run_that_never_groks_confirms_no_prediction():
    scan = A.analyze_scan(classification_scan(np.full(len(GRID), 0.05), w=GRID))
    scan.w_c = A.Estimate(21.98, 16.79, 28.78)  # the knee of the reported run
    r = A.analyze_trajectory(never_grokking(), scan)
    assert r.grokking.step.value is None and r.delay.value is None
    p = {q.target: q for q in r.predictions}
    q = -math.log(1 - 0.01)
    assert p["w_c"].step.value == pytest.approx(14 + math.log(30.45 / 21.98) / q)  # the prediction is kept ...
    assert p["w_c"].ratio is None  # ... but nothing measured confirms it
    assert p["w_c"].ratio_low == pytest.approx(300 / p["w_c"].step.value)
    assert p["w_c"].ratio_reason == ("never grokked within 300 steps: the run passed the predicted step 46 "
                                     "without grokking")
    assert p["zone_high"].step.value is None and "no scanned norm reaches test accuracy" in p["zone_high"].reason
    short = A.analyze_trajectory(never_grokking(40, status="running"), scan)
    pc = next(q for q in short.predictions if q.target == "w_c")
    assert pc.ratio_low < 1 and pc.ratio_reason == ("not grokked yet at step 40 (still running): the predicted step "
                                                    "46 lies beyond it, untested")
    from landscape.report import analysis_report

    text = analysis_report(A.Analysis(A.Criteria(), scan, [r], []))
    row = next(line for line in text.splitlines() if line.startswith("wd1_init1_seed0 "))
    assert f">{300 / p['w_c'].step.value:.2f}" in row.split()  # a bound, never a ratio that looks measured
    assert "wd1_init1_seed0: prediction to w_c not confirmed: never grokked within 300 steps" in text
    assert "Goldilocks zone     none: no scanned norm reaches test accuracy >= 0.9" in text


def test_a_regression_zone_over_the_whole_grid_sets_no_grokking_threshold():
    scan = A.analyze_scan(make_scan(UGRID, power_L(UGRID), u_curve(UGRID, a=0.1)))
    assert scan.zone.reason and scan.zone.threshold is not None
    step = np.arange(0, 2001, 10)
    traj = make_traj(step, 12 * (1 - 1e-4) ** step, np.geomspace(1, 1e-6, len(step)), 1e-3)
    r = A.analyze_trajectory(traj, scan)
    assert r.grokking.step.value is None and "a scan with a Goldilocks zone (test loss stays within" in \
        r.grokking.step.reason
    p = {q.target: q for q in r.predictions}
    assert "over the whole scanned grid" in p["zone_high"].reason
    assert p["w_c"].step.value is not None and p["w_c"].ratio_low is None
    assert p["w_c"].ratio_reason == "not measured: no grokking step to compare with"
    given = A.analyze_trajectory(traj, scan, A.Criteria(test_loss=1e-2))  # an explicit threshold still works
    assert given.grokking.step.value == 0


def test_classification_trajectory_uses_accuracies():
    step = np.arange(0, 101)
    traj = make_traj(step, 10.0, 1.0, 1.0, classification=True,
                     train_acc=np.where(step >= 12, 1.0, 0.5), test_acc=np.where(step >= 70, 0.95, 0.3))
    r = A.analyze_trajectory(traj)
    assert (r.memorization.step.value, r.grokking.step.value, r.delay.value) == (12, 70, 58)


def test_incompatible_scan_is_not_used():
    scan = make_scan(UGRID, power_L(UGRID), u_curve(UGRID), task="teacher-student")
    traj = make_traj(np.arange(0, 100), 5.0, 1e-9, 1e-9, task="modular")
    res = A.analyze(scan, [traj])
    assert res.scan is not None
    assert "task" in res.trajectories[0].notes[0] and res.trajectories[0].grokking.step.value is None
    assert any("scan not used" in m for m in res.messages)


# ---------------------------------------------------------------- weight-decay sweeps

def step_traj(grok_step, wd, seed=0, n=None):
    """A trajectory that memorizes at step 5 and whose test loss drops at ``grok_step``."""
    step = np.arange(0, (n or grok_step + 50) + 1)
    return make_traj(step, 10.0, np.where(step >= 5, 1e-6, 1.0), np.where(step >= grok_step, 1e-6, 1.0),
                     wd=wd, seed=seed)


CRIT = A.Criteria(train_loss=1e-3, test_loss=1e-3)


@pytest.mark.parametrize("exponent, wds, c", [(-1.0, [0.01, 0.03, 0.1, 0.3, 1.0], 300),
                                              (-0.5, [0.01, 0.04, 0.16, 0.64], 400)])
def test_sweep_slope_recovers_the_exponent(exponent, wds, c):
    trajs = [step_traj(round(c * wd ** exponent), wd) for wd in wds]
    fits = A.analyze(None, trajs, CRIT).sweeps
    assert len(fits) == 1
    assert fits[0].slope == pytest.approx(exponent, abs=1e-9)
    assert fits[0].stderr == pytest.approx(0, abs=1e-9)


def test_sweep_error_is_the_least_squares_standard_error_and_groups_pool():
    wds, wds1 = [0.01, 0.03, 0.1, 0.3], [0.02, 0.06, 0.2, 0.6]
    steps0 = [31000, 9000, 3300, 950]  # noisy ~c / wd
    steps1 = [2 * s for s in (14000, 5500, 1450, 520)]  # another seed: a different prefactor and grid
    trajs = [step_traj(s, wd, seed=0) for s, wd in zip(steps0, wds)]
    trajs += [step_traj(s, wd, seed=1) for s, wd in zip(steps1, wds1)]
    trajs.append(step_traj(10 ** 6, 1.0, seed=0, n=100))  # never groks within its 100 steps
    fits = A.analyze(None, trajs, CRIT).sweeps
    assert [f.group.get("seed") for f in fits[:2]] == [0, 1] and fits[2].group == {"pooled": 2}
    x, y = np.log(wds), np.log(steps0)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    se = math.sqrt(resid @ resid / (len(x) - 2) / ((x - x.mean()) @ (x - x.mean())))
    assert fits[0].slope == pytest.approx(slope) and fits[0].stderr == pytest.approx(se)
    assert "wd1_init8_seed0" in fits[0].excluded and "never reaches" in fits[0].excluded["wd1_init8_seed0"]
    assert fits[0].deviation_sigma == pytest.approx((slope + 1) / se)
    # pooled: one slope, one intercept per seed == regression on the within-seed demeaned data
    x1, y1 = np.log(wds1), np.log(steps1)
    xs = np.concatenate([x - x.mean(), x1 - x1.mean()])
    ys = np.concatenate([y - y.mean(), y1 - y1.mean()])
    pooled_slope = (xs @ ys) / (xs @ xs)
    assert fits[2].slope == pytest.approx(pooled_slope)
    assert abs(fits[2].slope - stats.linregress(np.r_[x, x1], np.r_[y, y1]).slope) > 0.05  # not a plain fit
    single = stats.linregress(x, y)
    assert fits[0].intercept == pytest.approx(single.intercept)


def test_no_sweep_without_two_weight_decays():
    res = A.analyze(None, [step_traj(100, 0.1)], CRIT)
    assert res.sweeps == [] and any("no weight-decay sweep" in m for m in res.messages)
    res = A.analyze(None, [step_traj(100, 0.1), step_traj(10 ** 6, 0.3, n=50)], CRIT)
    assert res.sweeps[0].slope is None and "2 or more weight decays" in res.sweeps[0].reason


# ---------------------------------------------------------------- output

def test_json_is_strict_and_report_says_what_is_missing():
    step = np.arange(0, 20001, 50)
    norm = 70 * (1 - 3e-4) ** step
    grid = np.geomspace(0.5, 80, 23)
    scan = make_scan(grid, power_L(grid, knee=1.0), u_curve(grid, center=5.0, a=0.5))
    scan["test_loss"][0, 0] = np.nan
    del scan["w0"]  # unknown w0: NaN inside, null in JSON
    trajs = [make_traj(step, norm, np.maximum(20 * np.exp(-step / 30.0), 1e-9),
                       u_curve(norm, center=5.0, a=0.5), wd=0.1, lr=3e-3),
             make_traj(step, norm, 1.0, 1.0, wd=0.3, lr=3e-3)]  # never memorizes
    res = A.analyze(scan, trajs)
    d = A.to_dict(res)
    text = json.dumps(d, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert back["scan"]["w0"] is None and math.isnan(res.scan.w0)
    assert back["scan"]["w_c"]["value"] == pytest.approx(res.scan.w_c.value)
    assert back["trajectories"][1]["memorization"]["step"]["value"] is None
    from landscape.report import analysis_report

    report = analysis_report(res)
    assert f"{res.scan.w_c.value:.4g}" in report
    assert "wd0.3_init8_seed0: memorization: never reaches train loss" in report
    assert "no prediction: no memorization step" in report
    assert analysis_report(A.analyze(None, [])).startswith("no scan")


def test_decay_under_a_schedule():
    """A constant schedule gives the closed form; cosine decay that ends before the target never reaches it; a
    warm-up takes longer than the peak rate alone."""
    w_from, w_to, lr, wd = 20.0, 12.0, 3e-3, 0.3
    closed = A.decay_steps(w_from, w_to, lr, wd)
    assert A.scheduled_decay_steps(w_from, w_to, np.full(100, lr), wd, lr) == pytest.approx(closed, rel=1e-9)
    assert A.scheduled_decay_steps(w_from, w_to, np.full(int(closed) + 10, lr), wd, 0.0) == pytest.approx(closed)
    from landscape.config.schedule import scheduled_lr
    cosine = np.array([scheduled_lr(lr, s, 1000, 0, "cosine") for s in range(1000)])
    assert A.scheduled_decay_steps(w_from, w_to, cosine, wd, 0.0) is None  # 1000 cosine steps decay less than ln(5/3)
    assert A.scheduled_decay_steps(w_from, 19.0, cosine, wd, 0.0) > A.decay_steps(w_from, 19.0, lr, wd)
    warm = np.array([scheduled_lr(lr, s, 10_000, 100, "constant") for s in range(10_000)])
    assert A.scheduled_decay_steps(w_from, w_to, warm, wd, lr) == pytest.approx(closed + 100 * 101 / 200, rel=1e-4)  # lr t/100: 50.5 steps short


def test_prediction_of_a_cosine_run_follows_its_schedule():
    t = {"lr": 3e-3, "weight_decay": 0.3, "schedule": "cosine", "warmup": 0, "steps": 4000}
    mem = A.Event("train loss", A.Estimate(1592.0), norm=20.02)
    target = A.Estimate(13.73, 11.89, 15.85)
    constant = A.predict(mem, "zone_high", target, 3e-3, 0.3)
    cosine = A.predict(mem, "zone_high", target, 3e-3, 0.3, schedule=_schedule(t, mem))
    assert cosine.step.value > constant.step.value + 100  # the cosine rate is below the peak after step 0
    far = A.predict(mem, "w_c", A.Estimate(2.731), 3e-3, 0.3, schedule=_schedule(t, mem))
    assert far.step.value is None and "schedule" in far.reason


def _offset_run(r_height, wd=0.1, w_start=70.0, lr=3e-3, name=None):
    """A run obeying pure decay whose test loss stays ``r_height`` times the scan's U at its norm."""
    step = np.arange(0, 20001)
    norm = w_start * (1 - lr * wd) ** step
    train = np.maximum(20 * np.exp(-step / 30.0), 1e-9)
    U = lambda w: u_curve(w, center=5.0, a=0.5)  # noqa: E731
    return make_traj(step, norm, train, r_height * U(norm), wd=wd, lr=lr, name=name), U


def test_run_edge_carries_the_runs_height_above_the_U_down_to_the_threshold():
    """A run 3x above the U groks at a smaller norm than the U's own edge: zone_high predicts too early, run_edge
    reads the height at memorization and lands on the measured step."""
    traj, U = _offset_run(3.0)
    grid = np.geomspace(0.5, 80, 23)
    res = A.analyze(make_scan(grid, power_L(grid, knee=1.0), U(grid)), [traj])
    r = res.trajectories[0]
    p = {q.target: q for q in r.predictions}
    edge_3x = 5.0 * math.exp(math.sqrt(math.log(10 / 3) / 0.5))  # where 3 x the U meets 10 x its minimum
    assert r.grokking.norm == pytest.approx(edge_3x, rel=2e-3)
    assert p["run_edge"].target_norm == pytest.approx(edge_3x, rel=0.03)
    assert p["run_edge"].ratio == pytest.approx(1, abs=0.03)
    assert p["run_edge"].step.low <= r.grokking.step.value <= p["run_edge"].step.high + 1
    assert p["zone_high"].ratio > 1.1  # the U's own edge is reached earlier than the run generalizes
    on_the_U, _ = _offset_run(1.0)
    same = {q.target: q for q in A.analyze(make_scan(grid, power_L(grid, knee=1.0), U(grid)),
                                           [on_the_U]).trajectories[0].predictions}
    assert same["run_edge"].step.value == pytest.approx(same["zone_high"].step.value, rel=0.02)


def test_a_runs_prediction_does_not_depend_on_the_other_runs():
    """Nothing is fitted across runs: each prediction is its own run's and the landscape's."""
    grid = np.geomspace(0.5, 80, 23)
    runs = [_offset_run(h, wd=wd, name=f"r{i}")[0] for i, (h, wd) in enumerate([(1.0, 0.05), (2.0, 0.1), (4.0, 0.2)])]
    U = lambda w: u_curve(w, center=5.0, a=0.5)  # noqa: E731
    scan = make_scan(grid, power_L(grid, knee=1.0), U(grid))
    together = A.analyze(scan, runs).trajectories
    for run, with_others in zip(runs, together):
        alone = A.analyze(scan, [run]).trajectories[0]
        assert [(p.target, p.step.value, p.step.low, p.step.high) for p in alone.predictions] == \
            [(p.target, p.step.value, p.step.low, p.step.high) for p in with_others.predictions]
        assert next(p for p in alone.predictions if p.target == "run_edge").step.value is not None


def test_run_edge_needs_the_norm_at_memorization_inside_the_scan():
    traj, U = _offset_run(2.0)
    grid = np.geomspace(0.5, 50, 17)  # the run memorizes near 70; the zone ends near 43
    p = next(q for q in A.analyze(make_scan(grid, power_L(grid, knee=1.0), U(grid)), [traj]).trajectories[0]
             .predictions if q.target == "run_edge")
    assert p.step.value is None and "outside the scanned norms" in p.reason


def test_a_norm_held_up_against_decay_is_said_where_the_prediction_assumes_it():
    """A run whose norm falls at a tenth of pure decay's pace: every prediction says its premise failed, with the
    norm at the predicted step and the pace; a run that follows pure decay says nothing of the kind."""
    lr, wd, w_start = 3e-3, 0.1, 70.0
    step = np.arange(0, 60001, 10)
    slow = w_start * (1 - lr * wd) ** (0.1 * step)
    train = np.maximum(20 * np.exp(-step / 30.0), 1e-9)
    grid = np.geomspace(0.5, 80, 23)
    U = lambda w: u_curve(w, center=5.0, a=0.5)  # noqa: E731
    scan = make_scan(grid, power_L(grid, knee=1.0), U(grid))
    r = A.analyze(scan, [make_traj(step, slow, train, U(slow), wd=wd, lr=lr)]).trajectories[0]
    zone = next(p for p in r.predictions if p.target == "zone_high")
    assert zone.ratio > 5  # the run groks far later than pure decay predicts
    assert "weight decay alone did not carry it there" in zone.premise and "0.1 x the pace of pure decay" in zone.premise
    from landscape.report import analysis_report
    assert "prediction to zone_high: the run's norm at the predicted step" in analysis_report(A.analyze(scan, [
        make_traj(step, slow, train, U(slow), wd=wd, lr=lr)]))
    fast, _ = _offset_run(1.0)
    assert all(p.premise is None for p in A.analyze(scan, [fast]).trajectories[0].predictions)

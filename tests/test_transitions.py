"""The transition finder on synthetic sigmoids in log step, and the leave-one-out forecast."""

import numpy as np
import pytest

from landscape import metrics
from landscape.analysis import transitions
from landscape.analysis.transitions import Transition, find, forecast

STEPS = np.unique(np.round(np.geomspace(1, 20000, 150))).astype(float)


def _sigmoid(center: float, width: float, low: float = 0.2, high: float = 0.9, steps=STEPS) -> np.ndarray:
    """A rise from low to high, logistic in log step: half-way at ``center``, 10%-90% over a factor ``width``."""
    k = 2 * np.log(9) / np.log(width)  # 10% and 90% at center / sqrt(width) and center * sqrt(width)
    return low + (high - low) / (1 + np.exp(-k * (np.log(steps) - np.log(center))))


@pytest.mark.parametrize("center, width", [(300, 4), (1000, 10), (50, 2)])
def test_finds_the_half_way_step_and_the_width_of_a_sigmoid(center, width):
    t = find("x", STEPS, _sigmoid(center, width))
    assert t.step == pytest.approx(center, rel=0.03)
    assert t.start == pytest.approx(center / np.sqrt(width), rel=0.05)
    assert t.end == pytest.approx(center * np.sqrt(width), rel=0.05)
    assert t.early == pytest.approx(0.2, abs=0.01) and t.late == pytest.approx(0.9, abs=0.01)


def test_a_falling_series_and_a_flat_one():
    t = find("x", STEPS, 1.1 - _sigmoid(1000, 5))
    assert t.step == pytest.approx(1000, rel=0.03) and t.late < t.early
    flat = find("x", STEPS, np.full(len(STEPS), 0.5))
    assert flat.step is None and "no change" in flat.reason
    assert find("x", STEPS[:3], [0.1, 0.2, 0.3]).reason.startswith("fewer than 5")


def test_a_loss_is_read_in_log_space():
    # a loss falling from 5 to 5e-4, a sigmoid in log loss: half-way in log loss is the geometric mean, 0.05
    loss = np.exp(np.log(5) + (np.log(5e-4) - np.log(5)) * (_sigmoid(800, 6, 0, 1)))
    t = find("restricted_loss", STEPS, loss)
    assert t.step == pytest.approx(800, rel=0.03) and t.start == pytest.approx(800 / np.sqrt(6), rel=0.05)
    assert t.early == pytest.approx(5, rel=0.02) and t.late == pytest.approx(5e-4, rel=0.05)
    linear = find("x", STEPS, loss)  # read linearly, the half-way (2.5) is crossed far earlier
    assert linear.step < 0.5 * t.step
    assert find("restricted_loss", STEPS, np.linspace(2.0, 1.6, len(STEPS))).step is None  # under a factor 1.5


def test_the_excluded_loss_is_read_after_its_minimum():
    # falls with memorization (half-way near step 30), then rises with the circuit (half-way at 2000)
    fall = np.exp(np.log(4) + (np.log(0.01) - np.log(4)) * _sigmoid(30, 3, 0, 1))
    loss = fall * np.exp((np.log(6) - np.log(0.01)) * _sigmoid(2000, 4, 0, 1))
    t = find("excluded_loss", STEPS, loss)
    assert t.step == pytest.approx(2000, rel=0.05) and t.late > t.early
    assert find("restricted_loss", STEPS, loss).step is None  # read from the start: from 4 to 6, no change


def test_leave_one_out_forecast_uses_the_other_lags_in_log_step():
    found = [Transition("x", step=100.0), Transition("x", step=200.0), Transition("x", step=400.0), None]
    forecast(found, [300.0, 800.0, None, 900.0])  # grokking 3x and 4x after the transition
    assert found[0].lead == 200 and found[1].lead == 600 and found[2].lead is None
    assert found[0].forecast == pytest.approx(100 * 4) and found[1].forecast == pytest.approx(200 * 3)
    assert found[2].forecast == pytest.approx(400 * np.sqrt(12))  # median of ln 3 and ln 4; no ratio of its own
    assert found[2].forecast_ratio is None and found[0].forecast_ratio == pytest.approx(400 / 300)


def test_order_parameters_are_registered_metrics():
    names = {m.name for m in metrics.registered()}
    assert set(transitions.ORDER_PARAMETERS) <= names

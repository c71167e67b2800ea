"""The order-parameter figures: a panel under the accuracy with the transitions marked, and order parameters
against the norm over the scan's L/U."""

import numpy as np
import pytest

from landscape import store
from landscape.figures import training as plot
from landscape.cli import main

STEPS = np.unique(np.round(np.geomspace(1, 5000, 60))).astype(float)


def _sig(center, low=0.1, high=0.9):
    return low + (high - low) / (1 + np.exp(-3 * (np.log(STEPS) - np.log(center))))


def _traj(name, wd, center):
    return {"name": name, "step": STEPS, "train_acc": _sig(50, 0, 1), "test_acc": _sig(center * 3, 0, 1),
            "train_loss": 1 - _sig(50, 0, 0.99), "test_loss": 1 - _sig(center * 3, 0, 0.99),
            "constrained_norm": 40 - 20 * _sig(center, 0, 1), "classification": True, "weight_decay": wd,
            "init_scale": 1.0, "seed": 0, "lr": 1e-3, "batch_size": None,
            "fourier_concentration": _sig(center), "probe_r2": _sig(center, -0.2, 0.8),
            "restricted_loss": np.exp(np.log(4) - 8 * _sig(center, 0, 1))}


def _marks(trajs):
    return {t["name"]: {"grokking": {"step": {"value": 3 * c}},
                        "transitions": [{"series": "fourier_concentration", "step": float(c)},
                                        {"series": "restricted_loss", "step": float(c)}]}
            for t, c in zip(trajs, (200, 600))}


def _markers(ax, marker):
    return [line for line in ax.get_lines() if line.get_marker() == marker]


def test_the_grokking_figure_draws_the_order_parameters_under_the_accuracy():
    trajs = [_traj("a", 1.0, 200), _traj("b", 0.3, 600)]
    fig = plot.grokking_figure(trajs, _marks(trajs))
    lower = [ax for ax in fig.axes if ax.get_ylabel() == "order parameter"]
    assert len(lower) == 2
    ax = lower[0]
    assert ax.get_xscale() == "log" and ax.get_ylim()[0] < -0.2  # shares the log step axis; negative R² shown
    dots = _markers(ax, "o")  # the fraction's transition, at its step and half-way value
    assert len(dots) == 1 and dots[0].get_xdata()[0] == 200
    assert dots[0].get_ydata()[0] == pytest.approx(0.5, abs=0.02)
    twin = next(a for a in fig.axes if a.get_ylabel() == "progress loss (log)" and a.bbox.bounds == ax.bbox.bounds)
    assert twin.get_yscale() == "log" and _markers(twin, "o")[0].get_xdata()[0] == 200
    grok = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert grok and grok[0].get_xdata()[0] == 600  # the grokking step, 3 x the transition
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "fourier_concentration" in labels and "restricted_loss (log, right)" in labels
    assert "grokking step" in labels


def test_without_order_parameters_the_grokking_figure_is_one_panel_per_trajectory():
    t = _traj("a", 1.0, 200)
    for k in ("fourier_concentration", "probe_r2", "restricted_loss"):
        del t[k]
    fig = plot.grokking_figure([t])
    assert not [ax for ax in fig.axes if ax.get_ylabel() == "order parameter"]


def test_order_against_norm_over_the_scans_landscape():
    trajs = [_traj("a", 1.0, 200), _traj("b", 0.3, 600)]
    norm = np.geomspace(5, 50, 8)
    scan = {"norm": norm, "train_loss": np.geomspace(1, 1e-3, 8)[:, None], "test_loss": np.ones((8, 1)),
            "status": np.zeros((8, 1), dtype=int)}
    from landscape.status import Status
    scan["status"][:] = Status.DONE
    result = {"scan": {"zone": {"low": {"value": 10.0}, "high": {"value": 20.0}}}}
    fig = plot.order_norm_figure(trajs, scan, _marks(trajs), result)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() in plot.ORDER_PARAMETERS]
    assert [ax.get_ylabel() for ax in panels] == ["fourier_concentration", "probe_r2", "restricted_loss"]
    fc = panels[0]
    stars = _markers(fc, "*")
    assert len(stars) == 2  # one transition per trajectory, on its path at the norm it had then
    x_at = stars[0].get_xdata()[0]
    assert x_at == pytest.approx(40 - 20 * 0.5, rel=0.03)
    assert panels[2].get_yscale() == "log"
    twins = [ax for ax in fig.axes if ax.get_ylabel() == "scan loss (log)"]
    assert len(twins) == 3 and len(twins[0].get_lines()) == 2  # L and U behind every panel
    np.testing.assert_allclose(twins[0].get_lines()[0].get_xdata(), norm)
    assert plot.order_norm_figure([{k: v for k, v in trajs[0].items() if k not in plot.ORDER_PARAMETERS}]) is None


def test_plot_writes_the_order_figures_from_a_real_run(tmp_path, capsys):
    out = tmp_path / "m.h5"
    common = ["--task", "modular", "--task-opt", "p=11", "-q", "--out", str(out)]
    assert main(["scan", *common, "--norms", "3:30:4", "--steps", "30", "--restarts", "1"]) == 0
    assert main(["train", *common, "--steps", "60", "--weight-decay", "0.1,1", "--lr", "0.01"]) == 0
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "m.png")]) == 0
    written = capsys.readouterr().out
    assert "m-order.png" in written and "m-grokking.png" in written
    assert (tmp_path / "m-order.png").stat().st_size > 10_000
    trajs = store.read_trajectories(out)
    assert len(plot.sweeps(trajs)) == 1 and {"restricted_loss", "fourier_concentration"} <= set(trajs[0])

"""`landscape analyze` end to end, and the real check of the LU mechanism's 1/weight-decay law."""

import json

import h5py
import numpy as np
import pytest

from landscape import store
from landscape.cli import main


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    """A real teacher-student scan plus a weight-decay sweep from 8x the default norm (~30 s on 2 cores)."""
    out = tmp_path_factory.mktemp("lu") / "lu.h5"
    assert main(["scan", "--norms", "0.1:10:9:log", "--steps", "600", "--quiet", "--out", str(out)]) == 0
    assert main(["train", "--init-scale", "8", "--weight-decay", "0.1,0.3,1", "--lr", "0.003", "--steps", "8000",
                 "--log-points", "200", "--quiet", "--out", str(out)]) == 0
    return out


def test_measured_grokking_slope_against_weight_decay_is_near_minus_one(sweep_file, capsys):
    capsys.readouterr()
    assert main(["analyze", "--json", "--no-write", str(sweep_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    fits = [s for s in result["sweeps"] if s["slope"] is not None]
    assert fits, result["sweeps"]
    slope = fits[0]["slope"]
    assert -1.4 <= slope <= -0.6, slope
    scan = result["scan"]
    assert scan["w_c"]["low"] <= scan["w_c"]["value"] <= scan["w_c"]["high"]
    assert scan["zone"]["low"]["value"] < scan["w_star"]["value"] < scan["zone"]["high"]["value"]
    # runs that memorize first grok within a factor 2 of the decay-time prediction into the zone
    for t in result["trajectories"]:
        zone = [p for p in t["predictions"] if p["target"] == "zone_high"][0]
        if zone["ratio"] is not None:
            assert 0.5 < zone["ratio"] < 2, (t["name"], zone)


def test_analyze_prints_stores_and_plot_draws_it(sweep_file, tmp_path, capsys):
    capsys.readouterr()
    assert main(["analyze", str(sweep_file)]) == 0
    text = capsys.readouterr().out
    assert "critical norm w_c" in text and "Goldilocks zone" in text and "wd0.1_init8_seed0" in text
    stored = store.read_analysis(sweep_file)
    assert stored["scan"]["w_c"]["value"] is not None
    with h5py.File(sweep_file) as f:
        g = f["analysis"]
        assert np.isfinite(g.attrs["w_c"]).all() and len(g["trajectories/grokking_step"]) == 3
    fig = tmp_path / "f.png"
    assert main(["plot", str(sweep_file), "-o", str(fig)]) == 0
    assert (tmp_path / "f-prediction.png").stat().st_size > 1000
    # new results make the stored analysis stale: it is dropped
    assert main(["train", "--init-scale", "8", "--weight-decay", "3", "--lr", "0.003", "--steps", "50",
                 "--quiet", "--out", str(sweep_file)]) == 0
    assert store.read_analysis(sweep_file) is None


def test_analyze_explains_what_it_cannot_compute(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "30", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 0  # usable input, partial answers
    captured = capsys.readouterr()
    assert "wd0_init1_seed0" in captured.out
    assert "never" in captured.out or "no " in captured.out


@pytest.mark.parametrize("argv, fragment", [
    (["--goldilocks", "0.5"], "at least 1"),
    (["--test-acc", "2"], "(0, 1]"),
    (["--train-loss", "-1"], "positive"),
])
def test_analyze_bad_options(argv, fragment, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "x.h5"), *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_analyze_refuses_files_without_data(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing.h5")]) == 2
    assert "no such file" in capsys.readouterr().err

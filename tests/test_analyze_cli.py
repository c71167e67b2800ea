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


def test_a_classification_run_that_never_groks_gets_no_zone_and_no_confirmed_prediction(tmp_path, capsys):
    """The reported case end to end (~15 s): modular addition whose cross-entropy stays within 10x its minimum over
    the whole grid (and whose test accuracy nowhere generalizes), and a run that memorizes and never groks."""
    out = tmp_path / "m.h5"
    task = ["--task", "modular", "--task-opt", "p=7", "--compile", "off", "--quiet", "--out", str(out)]
    assert main(["scan", *task, "--norms", "0.5:3:3", "--steps", "20"]) == 0
    assert main(["train", *task, "--steps", "60", "--weight-decay", "1", "--lr", "0.03", "--metrics", "group_norm",
                 "--log-every", "5"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out), "--no-accuracy", "--no-write"]) == 0  # the loss rule of the report
    text = capsys.readouterr().out
    assert "Goldilocks zone     none: test loss stays within 10 x its minimum" in text
    assert "over the whole scanned grid, norms 8.81 .. 52.86 (0.5 .. 3 w0); scan a wider norm range" in text
    assert main(["analyze", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Goldilocks zone     none: no scanned norm reaches test accuracy >= 0.9" in text
    row = next(line for line in text.splitlines() if line.startswith("wd1_init1_seed0 ")).split()
    assert row[4] == "-" and all(r == "-" or r.startswith(">") for r in row[8::2]), row  # no ratio looks measured
    assert "prediction to w_c not confirmed: never grokked within 60 steps" in text
    result = store.read_analysis(out)
    w_c = next(p for p in result["trajectories"][0]["predictions"] if p["target"] == "w_c")
    assert w_c["ratio"] is None and w_c["ratio_low"] > 0 and w_c["ratio_reason"].startswith("never grokked")
    with h5py.File(out) as f:
        g = f["analysis"]
        assert np.isnan(g.attrs["goldilocks_zone"]).all() and "no scanned norm" in g.attrs["goldilocks_zone_reason"]
        assert np.isnan(g["trajectories/grokking_step"][0])
        assert g["trajectories/grokking_reason"].asstr()[0].startswith("never reaches test accuracy >= 0.9")


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

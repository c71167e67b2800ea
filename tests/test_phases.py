"""Phase diagrams (issue 15): the classification rule, the diagram built from stored runs, the command end to end,
shards merged, resume, and bad input."""

import glob

import h5py
import numpy as np
import pytest

from landscape.analysis import phases
from landscape import store
from landscape.cli import main
from landscape.config.settings import Member
from landscape.tasks import get_task
from landscape.analysis.phases import PHASES, classify, majority
from landscape.config.phases import Axis, PhaseRule, default_gap

# ---- the rule, on synthetic runs -------------------------------------------------------------------------------


def _curve(steps, at):
    """Accuracy 0 before ``at`` and 1 from it (``at`` None: never)."""
    return np.where(steps >= at, 1.0, 0.0) if at is not None else np.zeros(len(steps))


def _run(name, fit, generalize, steps=np.arange(0, 3001, 10)):
    return {"name": name, "status": "done", "step": steps, "train_acc": _curve(steps, fit),
            "test_acc": _curve(steps, generalize), "train_loss": 1 - _curve(steps, fit),
            "test_loss": 1 - _curve(steps, generalize), "constrained_norm": np.ones(len(steps)),
            "classification": True, "lr": 1e-3, "weight_decay": 0.0,
            "series": ["train_acc", "test_acc", "train_loss", "test_loss"]}


def test_the_rule_covers_every_phase_and_its_boundaries():
    assert classify(100, 100 + 300, gap=300) == "comprehension"  # exactly the gap: still comprehension
    assert classify(100, 100 + 301, gap=300) == "grokking"
    assert classify(100, 50, gap=300) == "comprehension"  # generalizes first
    assert classify(None, 500, gap=300) == "comprehension"  # generalizes without meeting the train criterion
    assert classify(100, None, gap=300) == "memorization"
    assert classify(None, None, gap=300) == "confusion"
    assert default_gap(3000) == 300 and default_gap(10**5) == 1000 and default_gap(5) == 1


def test_majority_over_seeds_breaks_ties_towards_the_earlier_phase():
    codes = np.array([[[1, 1, 0], [2, 3, -1], [-1, -1, -1]]], dtype=np.int8)
    assert majority(codes).tolist() == [[1, 2, -1]]


def test_diagram_places_each_run_in_its_cell_and_reads_its_times():
    x, y = Axis("lr", (1e-3, 1e-2)), Axis("weight-decay", (0.0, 1.0))
    members, runs = [], []
    times = {(0, 0): (None, None), (0, 1): (200, None), (1, 0): (200, 2000), (1, 1): (200, 300)}
    for (i, j), (fit, gen) in times.items():
        m = Member(y.values[j], 1.0, 0, lr=x.values[i], named=("lr",))
        members.append(m)
        runs.append(_run(m.name, fit, gen))
    d = phases.diagram(x, y, [0], members, runs, PhaseRule(gap=300), 3000)
    names = [[PHASES[c] for c in row] for row in d.phase[:, :, 0]]
    assert names == [["confusion", "memorization"], ["grokking", "comprehension"]]
    assert d.t_train[1, 0, 0] == 200 and d.t_test[1, 0, 0] == 2000 and np.isnan(d.t_test[0, 1, 0])
    assert d.names[1, 1, 0] == "lr0.01_wd1_init1_seed0"
    s = phases.summarize(d)
    assert s.fractions == {p: 0.25 for p in PHASES}
    along_wd = next(b for b in s.boundaries if b.along == "weight-decay")
    assert along_wd.at == [(1e-2, [0.5])]  # between wd 0 (grokking) and 1 (comprehension), linear axis
    assert next(b for b in s.boundaries if b.along == "lr").at == []


def test_a_run_not_finished_is_left_unclassified():
    x, y = Axis("lr", (1e-3,)), Axis("weight-decay", (0.0,))
    m = Member(0.0, 1.0, 0, lr=1e-3)
    run = {**_run(m.name, 10, 20), "status": "running"}
    d = phases.diagram(x, y, [0], [m], [run], PhaseRule(gap=300), 3000)
    assert d.phase[0, 0, 0] == -1 and phases.summarize(d).unfinished == 1


def test_train_fraction_fit_recovers_the_slope_of_log_grokking_time():
    x, y = Axis("train-frac", (0.3, 0.5, 0.7, 0.9)), Axis("weight-decay", (1.0,))
    members, runs = [], []
    for f in x.values:
        m = Member(1.0, 1.0, 0, train_frac=f, named=("frac",))
        members.append(m)
        runs.append(_run(m.name, 10, int(round(np.exp(9 - 4 * f))), steps=np.arange(0, 9000)))
    d = phases.diagram(x, y, [0], members, runs, PhaseRule(gap=50), 9000)
    (value, slope, r2, n), = phases.summarize(d).frac_fit.fits
    assert value == 1.0 and n == 4 and slope == pytest.approx(-4, rel=0.01) and r2 > 0.999


# ---- the command ------------------------------------------------------------------------------------------------

GRID = ["--task", "modular", "--task-opt", "p=11", "--task-opt", "train_fraction=0.6", "--task-opt", "embed=8",
        "--task-opt", "width=16", "--x", "lr=3e-3,3e-2", "--y", "train-frac=0.5,1", "--seeds", "0,1",
        "--steps", "60", "--log-every", "5", "--weight-decay", "0.5", "--quiet"]


def _phases(path):
    with h5py.File(path, "r") as f:
        g = f["phases"]
        return {k: g[k][()] for k in ("x", "y", "seed", "phase", "t_train", "t_test", "trajectory")}


def test_a_small_grid_end_to_end(tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert main(["phases", *GRID, "--out", str(out)]) == 0
    stored = _phases(out)
    assert stored["phase"].shape == (2, 2, 2) and (stored["phase"] >= 0).all()
    assert stored["x"].tolist() == [3e-3, 3e-2] and stored["y"].tolist() == [0.5, 1.0]
    with h5py.File(out, "r") as f:
        g = f["phases"]
        assert g["phase"].attrs["flag_meanings"].split() == list(PHASES)
        assert g["x"].attrs["axis"] == "lr" and g["y"].attrs["axis"] == "train-frac"
        name = g["trajectory"].asstr()[1, 0, 1]
        t = f["trajectories"][name]
        assert t.attrs["lr"] == 3e-2 and t.attrs["train_frac"] == 0.5 and t.attrs["seed"] == 1
        n = len(get_task("modular", {"p": 11, "train_fraction": 0.6}).x_train)
        assert t.attrs["train_examples"] == int(round(0.5 * n)) < n
    assert (tmp_path / "g-phases.png").stat().st_size > 10_000
    # analyze reports it, plot draws it
    assert main(["analyze", str(out), "--no-write"]) == 0
    text = capsys.readouterr().out
    assert "phase diagram: lr (columns) x train-frac (rows)" in text and "ln t_test against train fraction" in text
    assert main(["plot", str(out)]) == 0
    assert (tmp_path / "g.png").exists()
    # info names the grid and its phases, and the trajectory table shows the varying lr and training share
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    counts = np.bincount(stored["phase"].ravel(), minlength=len(PHASES))
    assert ("phases: lr (2 values) x train-frac (2 values) x 2 seed(s)" in text
            and ", ".join(f"{p} {c}" for p, c in zip(PHASES, counts)) in text)
    head, *rows = text[text.index("trajectory "):].splitlines()[:9]
    assert head.split()[1:3] == ["lr", "frac"]
    assert len({row.index(" done") for row in rows}) == 1  # the columns line up whatever the names' lengths


def test_rerun_resumes_and_classifies_the_same(tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert main(["phases", *GRID, "--out", str(out)]) == 0
    first = _phases(out)
    assert main(["phases", *GRID, "--out", str(out)]) == 0
    second = _phases(out)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])


def test_shards_merge_to_the_unsharded_result(tmp_path):
    whole = tmp_path / "whole.h5"
    assert main(["phases", *GRID, "--out", str(whole)]) == 0
    sharded = tmp_path / "sh.h5"
    for i in range(3):
        assert main(["phases", *GRID, "--out", str(sharded), "--shard", f"{i}/3"]) == 0
    shards = sorted(glob.glob(str(tmp_path / "sh.shard-*.h5")))
    assert len(shards) == 3 and not sharded.exists()
    with h5py.File(shards[0], "r") as f:
        assert "phases" not in f  # a shard holds part of the grid: classified after the merge
    merged = tmp_path / "merged.h5"
    assert main(["merge", *shards, "--out", str(merged)]) == 0
    a, b = _phases(whole), _phases(merged)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "merged-phases.png").exists()


@pytest.mark.parametrize("args", [
    ["--x", "momentum=0.1,0.2"],                          # unknown axis
    ["--x", "lr=1e-3,1e-2", "--y", "lr=1e-4,1e-3"],      # the same axis twice
    ["--x", "lr=0,1e-2"],                                 # lr must be positive
    ["--x", "init-scale=0:2:3"],                          # init scale must be positive
    ["--y", "train-frac=0.5,1.2"],                        # train fraction above 1
    ["--y", "train-frac=0,0.5"],                          # train fraction 0
    ["--y", "weight-decay=-1,1"],                         # negative weight decay
    ["--x", "lr"],                                        # no spec
    ["--train-acc", "0"], ["--test-acc", "1.5"], ["--gap", "-1"],  # thresholds out of range
    ["--x", "lr=1e-3,1e-2", "--lr", "0.01"],              # an axis also given as its own flag
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args):
    out = tmp_path / "bad.h5"
    assert main(["phases", "--task", "modular", "--steps", "5", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_regression_needs_thresholds_or_a_scan(tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert main(["phases", "--task", "tasks_for_tests:tiny", "--x", "lr=1e-3,1e-2", "--y", "weight-decay=0,1",
                 "--steps", "5", "--out", str(out)]) == 2
    assert "--train-loss and --test-loss" in capsys.readouterr().err
    assert main(["phases", "--task", "tasks_for_tests:tiny", "--x", "lr=1e-3,1e-2", "--y", "weight-decay=0,1",
                 "--steps", "20", "--train-loss", "0.5", "--test-loss", "0.5", "--quiet", "--out", str(out)]) == 0
    assert store.read_phases(out)["phase"].shape == (2, 2, 1)


def test_another_grid_into_the_same_file_needs_overwrite(tmp_path, capsys):
    """A second grid would replace the file's stored diagram: refused without --overwrite, also by submit; the same
    grid with other thresholds re-classifies the stored runs."""
    out = tmp_path / "r.h5"
    base = ["--task", "tasks_for_tests:tiny", "--y", "weight-decay=0,1", "--steps", "10", "--train-loss", "0.5",
            "--test-loss", "0.5", "--quiet", "--out", str(out)]
    assert main(["phases", "--x", "lr=1e-3,1e-2", *base]) == 0
    before = store.read_phases(out)
    capsys.readouterr()
    for argv in (["phases", "--x", "init-scale=1,2", *base],
                 ["submit", "phases", "--tasks", "2", "--dry-run", "--", "--x", "init-scale=1,2", *base]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another grid" in err and "--overwrite" in err
    np.testing.assert_array_equal(store.read_phases(out)["phase"], before["phase"])
    assert main(["phases", "--x", "lr=1e-3,1e-2", *base, "--train-loss", "1e-9"]) == 0  # other thresholds
    assert main(["phases", "--x", "init-scale=1,2", *base, "--overwrite"]) == 0
    assert store.read_phases(out)["x"].tolist() == [1, 2]


def test_regression_takes_its_thresholds_from_a_scan_in_the_file(tmp_path):
    out = tmp_path / "r.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.3:3:4", "--steps", "30", "--quiet",
                 "--out", str(out)]) == 0
    assert main(["phases", "--task", "tasks_for_tests:tiny", "--x", "lr=1e-3,1e-2", "--y", "weight-decay=0,1",
                 "--steps", "20", "--quiet", "--out", str(out)]) == 0
    stored = store.read_phases(out)
    assert stored["phase"].shape == (2, 2, 1) and "train loss <=" in stored["t_train_criterion"]

"""Continuation branches of the reduced landscape (issue 14, part 1): order, warm starts, resume, hysteresis."""

import json

import h5py
import numpy as np
import pytest
import torch

from landscape.commands import write as commands
from landscape.analysis import hysteresis
from landscape.engine import worker as loop
from landscape import store
from landscape.cli import main
from landscape.tasks import get_task

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
BRANCH = ["scan", *TINY, "--norms", "0.3:3:5", "--restarts", "2", "--steps", "30"]


def _loss_at(path, params: np.ndarray, norm: float) -> float:
    """The training loss of flat parameters rescaled to ``norm`` (all parameters constrained)."""
    task = get_task("tasks_for_tests:tiny")
    module, layout, _, _ = loop.model_of(task, "*", "auto", 0)
    theta = torch.as_tensor(params, dtype=torch.float32)[None]
    theta = theta * (norm / torch.linalg.vector_norm(theta))
    return float(loop.Worker(task, module, layout).evaluate(theta, "train")[0][0])


def test_a_down_branch_visits_the_norms_in_order_each_from_its_predecessor(tmp_path):
    out = tmp_path / "b.h5"
    assert main([*BRANCH, "--branch", "down", "--history", "10", "--save-params", "--out", str(out)]) == 0
    down = store.read_scan(out, "down")
    assert store.read_scan(out) is None  # the independent scan is another group, not written here
    assert (down["status"] == 1).all()
    K = len(down["norm"])
    for k in range(K - 1):  # norm k starts where norm k + 1 ended, rescaled
        for r in range(2):
            start = down["history"]["train_loss"][k, r, 0]
            assert start == pytest.approx(_loss_at(out, down["params"][k + 1, r], down["norm"][k]), rel=1e-4)
    # the first point of the branch (the largest norm) is the independent scan's point there
    assert main([*BRANCH, "--out", str(tmp_path / "i.h5")]) == 0
    ind = store.read_scan(tmp_path / "i.h5")
    np.testing.assert_allclose(down["train_loss"][-1], ind["train_loss"][-1], rtol=1e-4)
    with h5py.File(out) as f:  # where a resumed branch goes on from: the last norm's minimizers
        np.testing.assert_array_equal(f["branches/down/last_params"][()], down["params"][0])
        assert f["branches/down"].attrs["branch"] == "down"


def test_an_up_branch_starts_from_the_smallest_norm(tmp_path):
    out = tmp_path / "u.h5"
    assert main([*BRANCH, "--branch", "up", "--history", "10", "--save-params", "--out", str(out)]) == 0
    up = store.read_scan(out, "up")
    for k in range(1, len(up["norm"])):
        start = up["history"]["train_loss"][k, 0, 0]
        assert start == pytest.approx(_loss_at(out, up["params"][k - 1, 0], up["norm"][k]), rel=1e-4)


def test_a_branch_resumed_after_a_kill_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    assert main([*BRANCH, "--branch", "both", "--out", str(whole)]) == 0
    real = store.write_chunk
    calls = []

    def dying(*args, **kwargs):
        if len(calls) == 5:  # down, up, down, up, down written: the process dies before the 3rd up
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "write_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        commands.scan_branches(_config("both"), str(cut), quiet=True)
    monkeypatch.setattr(store, "write_chunk", real)
    assert (store.read_scan(cut, "down")["status"] == 1).sum() == 3 * 2
    assert (store.read_scan(cut, "up")["status"] == 1).sum() == 2 * 2
    assert main([*BRANCH, "--branch", "both", "--out", str(cut)]) == 0
    for b in ("down", "up"):
        a, c = store.read_scan(whole, b), store.read_scan(cut, b)
        for key in store.POINT_VALUES:
            np.testing.assert_array_equal(a[key], c[key], err_msg=f"{b} {key}")


def _config(branch):
    from landscape.cli import build_parser, config_of
    from landscape.config.settings import ScanConfig

    args = build_parser().parse_args([*BRANCH, "--branch", branch])
    return config_of(args, ScanConfig)


def test_branch_shards_split_the_restarts_and_merge_to_the_unsharded_file(tmp_path, capsys):
    from landscape import cluster

    argv = ["scan", *TINY, "--norms", "0.3:3:4", "--restarts", "3", "--steps", "20", "--branch", "both"]
    whole, out = tmp_path / "whole.h5", tmp_path / "s.h5"
    assert main([*argv, "--out", str(whole)]) == 0
    for i in range(2):
        assert main([*argv, "--out", str(out), "--shard", f"{i}/2"]) == 0
        part = store.read_scan(cluster.shard_path(out, i, 2), "down")
        assert (part["status"][:, i::2] == 1).all() and (part["status"][:, 1 - i::2] == 0).all()
    assert main([*argv, "--out", str(out), "--shard", "3/4"]) == 0  # a shard with no restart: nothing to do
    assert "has no restarts" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "s.shard-*-of-0002.h5"), "-o", str(out)]) == 0
    for b in ("down", "up"):
        a, m = store.read_scan(whole, b), store.read_scan(out, b)
        for key in (*store.POINT_VALUES, "status"):
            np.testing.assert_allclose(m[key], a[key], rtol=1e-6, err_msg=f"{b} {key}")
        with h5py.File(whole) as fa, h5py.File(out) as fm:
            np.testing.assert_allclose(fm[f"branches/{b}/last_params"][()], fa[f"branches/{b}/last_params"][()],
                                       rtol=1e-6)
            assert "shard" not in fm[f"branches/{b}"].attrs
    # a merged file resumes: nothing left to compute
    assert main([*argv, "--out", str(out)]) == 0


def test_overwrite_recomputes_a_branch_and_keeps_the_rest_of_the_file(tmp_path):
    out = tmp_path / "o.h5"
    assert main(["train", *TINY, "--steps", "30", "--out", str(out)]) == 0
    assert main([*BRANCH, "--out", str(out)]) == 0
    assert main([*BRANCH, "--branch", "down", "--out", str(out)]) == 0
    before = store.read_scan(out, "down")
    assert main([*BRANCH, "--branch", "down", "--steps", "40", "--out", str(out)]) == 2  # another config
    assert main([*BRANCH, "--branch", "down", "--steps", "40", "--overwrite", "--out", str(out)]) == 0
    after = store.read_scan(out, "down")
    assert after["config"]["steps"] == 40 and not np.array_equal(after["train_loss"], before["train_loss"])
    assert store.read_scan(out)["config"]["steps"] == 30  # the independent scan and the trajectory are kept
    assert len(store.read_trajectories(out)) == 1
    assert not store.staging(out).exists()


def test_a_down_branch_can_start_from_a_stored_trajectory(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["train", *TINY, "--steps", "40", "--init-scale", "3", "--lr", "0.01", "--out", str(out)]) == 0
    name = store.read_trajectories(out)[0]["name"]
    theta, _ = store.final_params(out, name)
    assert main([*BRANCH, "--branch", "down", "--from-trajectory", name, "--history", "10", "--out", str(out)]) == 0
    down = store.read_scan(out, "down")
    for r in range(2):  # the largest norm starts from the trajectory's last parameters, rescaled
        assert down["history"]["train_loss"][-1, r, 0] == pytest.approx(_loss_at(out, theta, down["norm"][-1]),
                                                                         rel=1e-4)
    capture = main([*BRANCH, "--branch", "down", "--out", str(out)])  # another start: another branch
    assert capture == 2


@pytest.mark.parametrize("argv, fragment", [
    (["--branch", "down", "--from-trajectory", "nosuch"], "no trajectory 'nosuch'"),
    (["--branch", "up", "--from-trajectory", "nosuch"], "use it with --branch down or both"),
    (["--from-trajectory", "nosuch"], "use it with --branch down or both"),
    (["--branch", "down", "--norms", "1"], "two or more norms"),
    (["--branch", "up", "--shard", "0/x"], "--shard"),
    (["--branch", "sideways"], "--branch must be one of independent, down, up, both"),
])
def test_bad_branch_input_is_one_line_and_leaves_the_file_untouched(argv, fragment, tmp_path, capsys):
    out = tmp_path / "keep.h5"
    assert main([*BRANCH, "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*BRANCH, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err
    assert out.read_bytes() == before


def test_analyze_reports_hysteresis_and_plot_draws_the_branches(tmp_path, capsys):
    out = tmp_path / "h.h5"
    assert main([*BRANCH, "--out", str(out)]) == 0
    assert main([*BRANCH, "--branch", "both", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out), "--json", "--no-write"]) == 0
    result = json.loads(capsys.readouterr().out)
    pairs = [(g["first"], g["second"]) for g in result["hysteresis"]]
    assert pairs == [("down", "up"), ("down", "independent"), ("up", "independent")]
    assert result["down"]["w_c"] is not None
    assert main(["analyze", str(out), "--no-write"]) == 0
    assert "hysteresis down vs up" in capsys.readouterr().out
    assert main(["plot", str(out), "-o", str(tmp_path / "h.png")]) == 0
    from landscape.figures import landscape as plot
    fig = plot.scan_figure(store.read_scan(out), list(store.read_branches(out).values()))
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "train, down branch" in labels and "test, up branch" in labels


def test_compare_finds_the_range_and_the_area_of_a_known_gap():
    norm = np.geomspace(1, 16, 5)  # ln-spaced by ln 2
    ones = np.ones((5, 1))
    a = {"norm": norm, "status": ones.astype(int), "train_loss": ones, "test_loss": ones.copy(), "branch": "down"}
    b = {**a, "branch": "up", "test_loss": np.array([[1.0], [1.5], [8.0], [8.0], [1.0]])}
    gap = hysteresis.compare(a, b)
    assert gap.test_range == pytest.approx((4.0, 8.0)) and gap.test_differ_at == 2 and gap.train_range is None
    # |ln ratio| = 0, ln 1.5, ln 8, ln 8, 0 over steps of ln 2
    expected = np.log(2) * (np.log(1.5) / 2 + (np.log(1.5) + np.log(8)) / 2 + np.log(8) + np.log(8) / 2)
    assert gap.area == pytest.approx(expected)
    assert gap.test_ratio[2] == pytest.approx(1 / 8)

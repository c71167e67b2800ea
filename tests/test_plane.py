"""Two-norm landscapes (issue 14, part 3): the product of two spheres, its storage, merge, analysis and figure."""

import json

import h5py
import numpy as np
import pytest
import torch

from landscape.analysis import plane
from landscape.experiments import scan as scan_mod
from landscape.engine import sphere
from landscape import store
from landscape.cli import main
from landscape.config.settings import ScanConfig, resolve
from landscape.tasks import get_task

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
GRID = ["--norms", "0.*=0.5:2:3", "--norms", "*=0.3:3:4:log"]
SCAN = ["scan", *TINY, *GRID, "--steps", "20", "--restarts", "2"]


def _plan(**flags):
    cfg = resolve(ScanConfig, flags={"task": "tasks_for_tests:tiny", "norms": GRID[1::2], "steps": 25, **flags})
    return scan_mod.make_plan(cfg, get_task(cfg.task))


def test_group_masks_project_and_retract_each_group_on_its_own_sphere():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0.]])  # the last coordinate is free
    theta, vec = torch.randn(3, 5), torch.randn(3, 5)
    target = torch.tensor([[1.0, 2.0], [0.5, 3.0], [2.0, 0.1]])
    on = sphere.retract(theta, target, mask)
    torch.testing.assert_close(sphere.constrained_norm(on, mask), target)
    assert torch.equal(on[:, 4], theta[:, 4])  # free coordinates untouched
    t = sphere.tangent(on, vec, mask)
    for row in mask:  # orthogonal to each group's part of theta
        torch.testing.assert_close((t * on * row).sum(-1), torch.zeros(3), atol=1e-6, rtol=0)
    assert torch.equal(t[:, 4], vec[:, 4])
    # one group alone reduces to the one-sphere functions
    one = mask[:1] + mask[1:]
    torch.testing.assert_close(sphere.retract(theta, target[:, :1] * 0 + 2, one),
                               sphere.retract(theta, torch.full((3,), 2.0), one[0]))


def test_the_grid_is_the_product_of_the_groups_norms_each_in_its_own_w0():
    plan = _plan()
    assert plan.shape == (3, 4) and plan.norm.shape == (12, 2)
    assert plan.layout.group_names(1) == ["0.weight", "0.bias"]
    assert plan.layout.group_names(2) == ["2.weight", "2.bias"]
    np.testing.assert_allclose(plan.alpha[:4, 0], 0.5)  # group 1 varies slowest
    np.testing.assert_allclose(plan.alpha[:4, 1], [0.3, 0.3 * 10 ** (1 / 3), 0.3 * 10 ** (2 / 3), 3])
    full = plan.directions[:1]
    w0 = sphere.constrained_norm(full, plan.layout.sphere_mask())[0].numpy()
    np.testing.assert_allclose(plan.w0, w0, rtol=1e-6)
    np.testing.assert_allclose(plan.norm, plan.alpha * w0, rtol=1e-6)


@pytest.mark.parametrize("engine", ["auto", "vmap", "loop"])
def test_each_group_holds_its_norm_to_1e5_at_every_step(engine):
    plan = _plan(restarts=2)
    mask = plan.layout.sphere_mask()
    worst = []

    def check(step, theta, target):
        rel = (sphere.constrained_norm(theta, mask) / target - 1).abs().max()
        worst.append(float(rel))

    index = np.arange(plan.n_points)
    result = scan_mod.run_chunk(plan, index, engine=engine, on_step=check)
    assert len(worst) == plan.config.steps * (plan.n_points if engine == "loop" else 1)
    assert max(worst) < 1e-5
    assert np.isfinite(result.train_loss).all()
    # the two groups really move apart: the same total norm, different splits, different losses
    assert np.ptp(result.train_loss) > 1e-3


def test_a_two_norm_scan_is_stored_with_two_dimension_scales(tmp_path):
    out = tmp_path / "p.h5"
    assert main([*SCAN, "--history", "10", "--save-params", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        g = f["scan"]
        assert g["test_loss"].shape == (3, 4, 2) and g["history/train_loss"].shape == (3, 4, 2, 3)
        assert g["params"].shape == (3, 4, 2, 41)
        assert [s.name for s in g["test_loss"].dims[0].values()] == ["/scan/norm_1"]
        assert [s.name for s in g["test_loss"].dims[1].values()] == ["/scan/norm_2"]
        assert g["test_loss"].attrs["coordinates"] == "alpha_1 alpha_2"
        assert [s.name for s in g["test_loss"].dims[2].values()] == ["/scan/restart"]
        groups = json.loads(g.attrs["groups"])
        assert [x["glob"] for x in groups] == ["0.*", "*"]
        assert groups[1]["parameters"] == ["2.weight", "2.bias"]
        np.testing.assert_allclose(g["alpha_1"][()], [0.5, 1.25, 2.0])
        assert g.attrs["w0"].shape == (2,)
    s = store.read_scan(out)
    assert s["train_loss"].shape == (12, 2) and s["plane"]["shape"] == (3, 4)
    assert (s["status"] == 1).all()
    # every stored point is the one computed alone at that cell
    plan = _plan(restarts=2, steps=20)
    one = scan_mod.run_chunk(plan, np.array([2 * 7 + 1]))  # cell (1, 3), restart 1
    assert s["train_loss"][7, 1] == pytest.approx(float(one.train_loss[0]), rel=1e-5)
    # a rerun resumes: nothing left to do
    assert main([*SCAN, "--history", "10", "--save-params", "--out", str(out)]) == 0


def test_shards_of_a_two_norm_scan_merge_to_the_unsharded_file(tmp_path):
    whole = tmp_path / "whole.h5"
    extra = ["--history", "10", "--save-params"]
    assert main([*SCAN, *extra, "--out", str(whole), "--chunk", "5"]) == 0
    out = tmp_path / "s.h5"
    for i in range(3):
        assert main([*SCAN, *extra, "--out", str(out), "--shard", f"{i}/3", "--chunk", "2"]) == 0
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) == 0
    a, b = store.read_scan(whole), store.read_scan(out)
    for name in ("train_loss", "test_loss", "grad_norm", "steps", "status", "params"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-7, err_msg=name)
    for name in ("train_loss", "test_loss"):
        np.testing.assert_allclose(b["history"][name], a["history"][name], rtol=1e-5, err_msg=name)
    with h5py.File(out) as f:
        assert f["scan/test_loss"].shape == (3, 4, 2) and "shard" not in f["scan"].attrs
        assert f["scan/test_loss"].dims[1]["norm_2"].name == "/scan/norm_2"


def test_a_missing_shard_names_the_missing_cells(tmp_path, capsys):
    out = tmp_path / "s.h5"
    for i in (0, 1):
        assert main([*SCAN, "--out", str(out), "--shard", f"{i}/3"]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) != 0
    assert "alpha_1=" in capsys.readouterr().err


def _code(argv) -> int:
    """The exit code of the CLI (argparse refusals exit, checked refusals return)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


BAD = {
    "one group": ["--norms", "0.*=0.5:2"],
    "three groups": ["--norms", "0.*=1", "--norms", "2.*=1", "--norms", "*=1"],
    "grouped and plain": ["--norms", "0.*=0.5:2", "--norms", "0.5:2"],
    "nothing left for the second": ["--norms", "*=0.5:2", "--norms", "0.*=0.5:2"],
    "the same glob twice": ["--norms", "0.*=0.5:2", "--norms", "0.*=1:2"],
    "a glob matching nothing": ["--norms", "embed*=0.5:2", "--norms", "*=0.5:2"],
    "outside --constrain": ["--constrain", "0.*", "--norms", "0.*=0.5:2", "--norms", "2.*=0.5:2"],
    "a bad spec": ["--norms", "0.*=0.5:x", "--norms", "*=0.5:2"],
    "an empty glob": ["--norms", "=0.5:2", "--norms", "*=0.5:2"],
    "a branch": ["--norms", "0.*=0.5:2", "--norms", "*=0.5:2", "--branch", "down"],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_two_norm_grids_are_one_line_and_exit_2(case, tmp_path, capsys):
    out = tmp_path / "keep.h5"
    assert main(["scan", *TINY, "--norms", "0.5:2:3", "--steps", "5", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert _code(["scan", *TINY, "--steps", "5", *BAD[case], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert out.read_bytes() == before


def test_constrain_outside_both_groups_says_so(tmp_path, capsys):
    argv = ["scan", *TINY, "--steps", "5", "--constrain", "2.*", "--norms", "0.weight=1,2", "--norms", "0.bias=1,2",
            "--out", str(tmp_path / "x.h5")]
    assert _code(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--constrain '2.*' selects no parameter of the --norms groups" in err


def test_absolute_cannot_be_mixed_per_group(tmp_path, capsys):
    preset = tmp_path / "p.toml"
    preset.write_text('task = "tasks_for_tests:tiny"\nnorms = ["0.*=0.5:2", "*=1:2"]\nabsolute = [true, false]\n')
    assert _code(["scan", "--config", str(preset), "--quiet", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "absolute" in err
    # a preset's list of two groups is the same grid as the flags
    preset.write_text('task = "tasks_for_tests:tiny"\nnorms = ["0.*=0.5:2:3", "*=0.3:3:4:log"]\nsteps = 5\n')
    assert main(["scan", "--config", str(preset), "--quiet", "--out", str(tmp_path / "y.h5")]) == 0
    assert store.read_scan(tmp_path / "y.h5")["plane"]["shape"] == (3, 4)


def _synthetic(test_of):
    """A read_scan-like two-norm dict whose test loss is ``test_of(w1, w2)``."""
    n1, n2 = np.geomspace(0.1, 10, 5), np.geomspace(0.1, 10, 4)
    w1, w2 = np.meshgrid(n1, n2, indexing="ij")
    test = test_of(w1, w2).reshape(-1, 1)
    return {"plane": {"shape": (5, 4), "groups": [{"glob": "a*", "parameters": ["a.w"]},
                                                   {"glob": "*", "parameters": ["b.w"]}],
                      "norm": [n1, n2], "alpha": [n1, n2], "parameter_names": ["a.w", "b.w"]},
            "train_loss": np.ones_like(test), "test_loss": test, "train_acc": np.full_like(test, np.nan),
            "test_acc": np.full_like(test, np.nan), "status": np.ones_like(test, dtype=np.int8),
            "task": "t", "config": {"task_options": {}}}


def test_the_group_whose_norm_sets_the_test_loss_is_named():
    only_first = plane.analyze(_synthetic(lambda a, b: 1 + np.log(a) ** 2 + 0 * b))
    assert only_first.verdict.startswith("group 1 (a*)")
    assert only_first.profiles[1].test_decades == pytest.approx(0, abs=1e-12)  # flat: group 2 does not matter
    assert only_first.best["norm_1"] == pytest.approx(1.0)
    assert only_first.notes == ["the test minimum lies at the smallest scanned norm of group 2 (*): the minimum "
                                "may lie beyond the grid"]
    only_second = plane.analyze(_synthetic(lambda a, b: 1 + (b - 3) ** 2 + 0 * a))
    assert only_second.verdict.startswith("group 2 (*)")
    both = plane.analyze(_synthetic(lambda a, b: 1 + np.log(a * b) ** 2), factor=1.5)
    assert 0 < both.zone["cells"] < 20


def test_trajectory_paths_come_from_whole_module_group_norms():
    s = _synthetic(lambda a, b: a + b)
    t = {"name": "wd1", "step": np.array([0, 10]), "series": ["group_norm/a", "group_norm/b"],
         "group_norm/a": np.array([3.0, 1.0]), "group_norm/b": np.array([4.0, 2.0]), "config": {"task": "t"}}
    routes, why = plane.paths(s, [t])
    np.testing.assert_allclose(routes["wd1"][0], [3, 1])
    np.testing.assert_allclose(routes["wd1"][1], [4, 2])
    s["plane"]["parameter_names"] = ["a.w", "a.v", "b.w"]  # group 1 holds only part of module a
    routes, why = plane.paths(s, [t])
    assert not routes and "whole top-level modules" in why[0]


def test_analyze_info_and_plot_read_a_two_norm_file(tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert main([*SCAN, "--out", str(out)]) == 0
    assert main(["train", *TINY, "--steps", "30", "--init-scale", "1,2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 0
    text = capsys.readouterr().out
    assert "two-norm landscape: group 1 '0.*' x group 2 '*', 3 x 4 cells" in text
    assert "sets the test loss more" in text
    assert main(["info", str(out)]) == 0
    assert "two-norm grid 3 norms of '0.*'" in capsys.readouterr().out
    assert main(["plot", str(out), "-o", str(tmp_path / "p.png")]) == 0
    captured = capsys.readouterr()
    assert "not drawn" not in captured.err  # tiny's groups are whole modules: both paths are drawn
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert (tmp_path / "p-grokking.png").exists()


def test_a_plain_norms_flag_given_twice_keeps_the_last_as_every_flag_does():
    cfg = resolve(ScanConfig, flags={"norms": ["0.5:2", "1:3:4"]})
    assert cfg.norms == "1:3:4"


def test_no_prediction_figure_for_one_weight_decay_and_nothing_predicted():
    from landscape.figures import landscape as plot

    def traj(wd, grok, pred=None):
        return {"weight_decay": wd, "grokking": {"step": {"value": grok}},
                "predictions": [{"target": "w_c", "step": {"value": pred}}]}

    assert plot.prediction_figure({"trajectories": [traj(2.0, 2721), traj(2.0, 6000)]}) is None
    assert plot.prediction_figure({"trajectories": [traj(1.0, 2721), traj(2.0, 1400)]}) is not None
    assert plot.prediction_figure({"trajectories": [traj(2.0, 2721, 2500)]}) is not None


def test_a_two_norm_grid_can_be_submitted_as_a_job_array(capsys):
    assert main(["submit", "scan", "--tasks", "3", "--dry-run", "--", *TINY[:2], *GRID, "--out", "p.h5"]) == 0
    out = capsys.readouterr().out
    assert "--array=0-2" in out and "0.*=0.5:2:3" in out and "*=0.3:3:4:log" in out

"""Norm-constrained training (--fix-norm), the learning-rate schedule and Adam's betas, and their bad input."""

import numpy as np
import pytest

from landscape.config import schedule
from landscape import store
from landscape.cli import main
from landscape.config.settings import TrainConfig
from training import train_until

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]


def test_scheduled_lr_warms_up_linearly_then_holds_or_decays():
    assert [schedule.scheduled_lr(1.0, t, 10, 4) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    cos = [schedule.scheduled_lr(1.0, t, 10, 2, "cosine") for t in range(10)]
    assert cos[:3] == [0.0, 0.5, 1.0] and cos[2] > cos[5] > cos[9] > 0
    assert schedule.scheduled_lr(2.0, 5, 10) == 2.0


@pytest.mark.parametrize("constrain", ["*", "0.*"])
def test_fix_norm_holds_the_initial_norm_at_every_step(tmp_path, constrain):
    out = tmp_path / "f.h5"
    assert main(["train", *TINY, "--fix-norm", "--init-scale", "0.5,3", "--weight-decay", "0.5", "--lr", "0.05",
                 "--steps", "200", "--log-every", "1", "--constrain", constrain, "--out", str(out)]) == 0
    trajs = {t["name"]: t for t in store.read_trajectories(out)}
    assert set(trajs) == {"fixnorm_wd0.5_init0.5_seed0", "fixnorm_wd0.5_init3_seed0"}
    for t in trajs.values():
        assert t["fix_norm"] and t["status"] == "done" and len(t["step"]) == 201
        w = t["constrained_norm"]
        assert np.abs(w / w[0] - 1).max() <= 1e-5
        assert t["train_loss"][-1] < 0.8 * t["train_loss"][0]  # it trained on the sphere
        if constrain == "*":
            np.testing.assert_allclose(t["norm"], t["norm"][0], rtol=1e-5)
        else:  # the free parameters are decayed and move: the total norm is not fixed
            assert np.abs(t["norm"] / t["norm"][0] - 1).max() > 1e-3
    w0 = trajs["fixnorm_wd0.5_init0.5_seed0"]["constrained_norm"][0]
    assert trajs["fixnorm_wd0.5_init3_seed0"]["constrained_norm"][0] == pytest.approx(6 * w0, rel=1e-6)


def test_fix_norm_resumes_exactly(tmp_path):
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    cfg = TrainConfig(task="tasks_for_tests:tiny", fix_norm=True, init_scale=[0.8, 2.0], lr=0.02, steps=100,
                      log_every=5, checkpoint_every=20, warmup=10, schedule="cosine")
    train_until(parts, cfg, checkpoints=2)  # stopped after step 40, resumable
    assert all(40 <= t["checkpoint_step"] < 100 for t in store.read_trajectories(parts))
    args = ["train", *TINY, "--fix-norm", "--init-scale", "0.8,2", "--lr", "0.02", "--steps", "100", "--log-every",
            "5", "--checkpoint-every", "20", "--warmup", "10", "--schedule", "cosine"]
    assert main([*args, "--out", str(parts)]) == 0
    assert main([*args, "--out", str(whole)]) == 0
    for a, b in zip(store.read_trajectories(whole), store.read_trajectories(parts)):
        assert a["status"] == b["status"] == "done"
        np.testing.assert_array_equal(a["step"], b["step"])
        for key in ("train_loss", "test_loss", "constrained_norm"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_betas_warmup_and_schedule_are_stored_per_trajectory(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["train", *TINY, "--steps", "20", "--betas", "0.8,0.95", "--warmup", "5", "--schedule", "cosine",
                 "--out", str(out)]) == 0
    t = store.read_trajectories(out)[0]
    assert t["betas"] == [0.8, 0.95] and t["warmup"] == 5 and t["schedule"] == "cosine" and not t["fix_norm"]
    # other betas are another experiment for the same trajectory name
    assert main(["train", *TINY, "--steps", "20", "--betas", "0.9,0.95", "--warmup", "5", "--schedule", "cosine",
                 "--out", str(out)]) == 2


def test_betas_change_the_run(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["train", *TINY, "--steps", "30", "--lr", "0.01", "--out", str(a)]) == 0
    assert main(["train", *TINY, "--steps", "30", "--lr", "0.01", "--betas", "0.5,0.9", "--out", str(b)]) == 0
    assert store.read_trajectories(a)[0]["train_loss"][-1] != store.read_trajectories(b)[0]["train_loss"][-1]


def test_free_and_fixed_share_a_file_and_plot_compares_them(tmp_path, capsys):
    out = tmp_path / "both.h5"
    assert main(["train", *TINY, "--steps", "40", "--init-scale", "3", "--weight-decay", "0.1,1",
                 "--out", str(out)]) == 0
    assert main(["plot", str(out), "-o", str(tmp_path / "free.png")]) == 0
    assert not (tmp_path / "free-fixnorm.png").exists()  # only one kind: no comparison
    assert main(["train", *TINY, "--steps", "40", "--fix-norm", "--init-scale", "0.8", "--out", str(out)]) == 0
    names = sorted(t["name"] for t in store.read_trajectories(out))
    assert names == ["fixnorm_wd0_init0.8_seed0", "wd0.1_init3_seed0", "wd1_init3_seed0"]
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "b.png")]) == 0
    assert "b-fixnorm.png" in capsys.readouterr().out
    assert (tmp_path / "b-fixnorm.png").stat().st_size > 1000
    assert main(["analyze", str(out), "--train-loss", "10", "--test-loss", "10", "--json", "--no-write"]) == 0
    import json
    result = json.loads(capsys.readouterr().out)
    fixed = next(r for r in result["trajectories"] if r["name"].startswith("fixnorm_"))
    assert fixed["fix_norm"] and fixed["memorization"]["step"]["value"] is not None
    assert fixed["grokking"]["step"]["value"] is not None
    assert "held fixed" in fixed["predictions"][0]["reason"]


@pytest.mark.parametrize("argv, fragment", [
    (["--task", "modular", "--task-opt", "model=lstm"], "model must be mlp or transformer"),
    (["--task", "modular", "--task-opt", "model=transformer", "--task-opt", "p=12"], "prime"),
    (["--task", "modular", "--task-opt", "p=2", "--task-opt", "train_fraction=0.1"], "no training pair"),
    (["--task", "modular", "--task-opt", "p=3", "--task-opt", "train_fraction=0.99"], "no test pair"),
    (["--task", "modular", "--task-opt", "train_fraction=1.5"], "train_fraction"),
    (["--task", "modular", "--task-opt", "model=transformer", "--task-opt", "d_model=0"], "d_model"),
    (["--task", "tasks_for_tests:tiny", "--fix-norm", "--constrain", "nomatch.*"], "matches no parameter"),
    (["--task", "tasks_for_tests:tiny", "--warmup=-1"], "--warmup"),
    (["--task", "tasks_for_tests:tiny", "--steps", "10", "--warmup", "11"], "warmup must be at most steps"),
    (["--task", "tasks_for_tests:tiny", "--betas", "1,0.9"], "betas"),
    (["--task", "tasks_for_tests:tiny", "--betas", "0.9"], "betas"),
    (["--task", "tasks_for_tests:tiny", "--betas", "0.9,-0.1"], "--betas"),
    (["--task", "tasks_for_tests:tiny", "--schedule", "linear"], "--schedule"),
])
def test_bad_input_is_one_line_and_leaves_the_file_untouched(argv, fragment, tmp_path, capsys):
    out = tmp_path / "keep.h5"
    assert main(["train", *TINY, "--steps", "5", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["train", "--steps", "10", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err
    assert out.read_bytes() == before

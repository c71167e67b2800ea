import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from processes import watch

from landscape import store
from landscape.experiments import train
from landscape.cli import main
from landscape.config.settings import TrainConfig
from landscape.tasks import get_task


def _run(cfg, group=None):
    plan = train.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    group = group or plan.members
    logs = []
    train.run(plan, group, train.fresh_state(plan, group), on_checkpoint=lambda st, log: logs.append(log))
    steps = sum((log.step for log in logs), [])
    arrays = [log.arrays() for log in logs if len(log)]
    return plan, steps, {k: np.concatenate([a[k] for a in arrays], axis=1) for k in plan.series}


def test_zero_gradient_norm_follows_decoupled_decay_exactly():
    lr, wd, n = 0.01, 0.5, 300
    cfg = TrainConfig(task="tasks_for_tests:flat", init_scale=[3.0], weight_decay=[wd], lr=lr, steps=n, log_every=1)
    _, steps, log = _run(cfg)
    assert steps == list(range(n + 1))
    expected = log["norm"][0, 0] * (1 - lr * wd) ** np.arange(n + 1)
    np.testing.assert_allclose(log["norm"][0], expected, rtol=1e-5)
    assert log["norm"][0, -1] < 0.3 * log["norm"][0, 0]  # it did shrink


def test_init_scale_multiplies_default_norm():
    cfg = TrainConfig(task="tasks_for_tests:tiny", init_scale=[1.0, 4.0], steps=1, log_every=1)
    _, _, log = _run(cfg)
    assert log["norm"][1, 0] == pytest.approx(4 * log["norm"][0, 0], rel=1e-6)


@pytest.mark.parametrize("batch_size", [None, 8])
def test_vmapped_sweep_equals_separate_runs(batch_size):
    cfg = TrainConfig(task="tasks_for_tests:tiny", init_scale=[1.0, 3.0], weight_decay=[0.0, 0.3], seeds=[0, 1],
                      lr=0.01, steps=60, batch_size=batch_size, log_points=10)
    plan, steps, sweep = _run(cfg)
    assert len(plan.members) == 8
    for j, member in enumerate(plan.members):
        _, steps1, single = _run(cfg, [member])
        assert steps1 == steps
        for key in ("norm", "train_loss", "test_loss"):
            np.testing.assert_allclose(sweep[key][j], single[key][0], rtol=1e-5, atol=1e-8, err_msg=key)
    # the members really differ
    assert len({round(float(v), 8) for v in sweep["train_loss"][:, -1]}) == 8


def test_log_grid_is_log_spaced_and_includes_ends():
    steps = train.log_steps(TrainConfig(steps=10000, log_points=50))
    assert steps[0] == 0 and steps[-1] == 10000
    assert 40 <= len(steps) <= 52
    assert (steps[1:20] < 100).all()  # dense early
    assert train.log_steps(TrainConfig(steps=100, log_every=25)).tolist() == [0, 25, 50, 75, 100]


def _train_cmd(path, *extra):
    return [sys.executable, "-m", "landscape", "train", "--task", "tasks_for_tests:tiny", "--init-scale", "1,3",
            "--weight-decay", "0.1,1", "--steps", "3000", "--lr", "0.01", "--batch-size", "8",
            "--checkpoint-every", "200", "--log-points", "40", "--quiet", "--out", str(path), *extra]


def test_resume_after_real_kill_equals_uninterrupted_run(tmp_path, env):
    killed, clean = tmp_path / "killed.h5", tmp_path / "clean.h5"
    proc = subprocess.Popen(_train_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def checkpointed():
        with h5py.File(killed, "r") as f:
            return min(int(g.attrs["checkpoint_step"]) for g in f["trajectories"].values())

    reached = watch(proc, checkpointed, lambda step: step >= 400)
    reached = -1 if reached is None else reached
    assert proc.poll() is None, f"training ended before it was killed: {proc.stderr.read()!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 400 <= reached < 3000, f"kill came too late or never ({reached}): {proc.stderr.read()!r}"
    subprocess.run(_train_cmd(killed), env=env, check=True, capture_output=True)
    subprocess.run(_train_cmd(clean), env=env, check=True, capture_output=True)
    a = {t["name"]: t for t in store.read_trajectories(killed)}
    b = {t["name"]: t for t in store.read_trajectories(clean)}
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        assert a[name]["status"] == "done"
        np.testing.assert_array_equal(a[name]["step"], b[name]["step"])
        for key in ("norm", "train_loss", "test_loss"):
            np.testing.assert_allclose(a[name][key], b[name][key], rtol=1e-6, err_msg=f"{name} {key}")


def test_rerun_of_finished_sweep_computes_nothing(tmp_path, capsys):
    out = tmp_path / "t.h5"
    args = ["train", "--task", "tasks_for_tests:tiny", "--steps", "20", "--out", str(out)]
    assert main(args) == 0
    before = store.read_trajectories(out)[0]["train_loss"]
    capsys.readouterr()
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().err
    np.testing.assert_array_equal(store.read_trajectories(out)[0]["train_loss"], before)


def test_plot_scan_only_trajectories_only_and_both(tmp_path):
    scan_only, traj_only, both = tmp_path / "s.h5", tmp_path / "t.h5", tmp_path / "b.h5"
    scan_args = ["scan", "--task", "tasks_for_tests:tiny", "--steps", "20", "--norms", "0.5:3:4", "--quiet"]
    train_args = ["train", "--task", "tasks_for_tests:tiny", "--steps", "50", "--init-scale", "3",
                  "--weight-decay", "0.1,1", "--quiet"]
    assert main([*scan_args, "--out", str(scan_only)]) == 0
    assert main([*train_args, "--out", str(traj_only)]) == 0
    assert main([*train_args, "--out", str(both)]) == 0  # trajectories first, then the scan
    assert main([*scan_args, "--out", str(both)]) == 0
    assert main(["plot", str(scan_only), "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000 and not (tmp_path / "s-grokking.png").exists()
    assert main(["plot", str(traj_only), "-o", str(tmp_path / "t.svg")]) == 0
    assert (tmp_path / "t.svg").stat().st_size > 1000
    assert main(["plot", str(both), "-o", str(tmp_path / "b.pdf"), "--trajectories", "wd0.1_init3_seed0"]) == 0
    assert (tmp_path / "b.pdf").stat().st_size > 1000 and (tmp_path / "b-grokking.pdf").stat().st_size > 1000
    assert main(["info", str(both)]) == 0


def test_mismatched_task_is_refused(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny", "--steps", "5", "--norms", "1", "--quiet",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--task", "teacher-student", "--steps", "5", "--out", str(out)]) == 2
    assert "holds task" in capsys.readouterr().err
    assert main(["train", "--task", "tasks_for_tests:tiny", "--task-opt", "n=20", "--steps", "5",
                 "--out", str(out)]) == 2
    assert "holds task" in capsys.readouterr().err
    # same name, other settings: refused, file untouched
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "5", "--out", str(out), "-q"]) == 0
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "6", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err
    assert store.read_trajectories(out)[0]["config"]["steps"] == 5


@pytest.mark.parametrize("argv, fragment", [
    (["--weight-decay", "a,b"], "--weight-decay"),
    (["--weight-decay=-1"], "non-negative"),
    (["--init-scale", "0"], "positive"),
    (["--seeds", "x"], "--seeds"),
    (["--seeds", "1,1"], "twice"),
    (["--plot"], "unrecognized"),
])
def test_train_bad_input(argv, fragment, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "x.h5"), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists()

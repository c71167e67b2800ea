"""Per-member hyperparameters in one training ensemble: learning rate and training share (issue 15).

A member inside a mixed ensemble must follow the same trajectory as a run of that member alone, and a
member training on a share of the split must equal a run on a task holding only that share."""

import h5py
import numpy as np
import pytest

from landscape.experiments import train
from landscape.cli import main
from landscape.config.settings import TrainConfig
from landscape.tasks import get_task

MODULAR = {"p": 11, "train_fraction": 0.6, "embed": 8, "width": 16}


def _run(cfg, group=None):
    plan = train.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    group = group or plan.members
    logs = []
    train.run(plan, group, train.fresh_state(plan, group), on_checkpoint=lambda st, log: logs.append(log))
    arrays = [log.arrays() for log in logs if len(log)]
    return plan, {k: np.concatenate([a[k] for a in arrays], axis=1) for k in plan.series}


def _alone(cfg, member, **extra):
    """The config of ``member`` run on its own: every per-member axis a single value."""
    return TrainConfig(**{**cfg.__dict__, "lr": [member.lr], "weight_decay": [member.weight_decay],
                          "init_scale": [member.init_scale], "train_frac": [member.train_frac],
                          "seeds": [member.seed], **extra})


CASES = [("tasks_for_tests:tiny", {}, "auto", None), ("tasks_for_tests:tiny", {}, "vmap", 8),
         ("tasks_for_tests:tiny", {}, "loop", None), ("modular", MODULAR, "auto", None),
         ("modular", MODULAR, "vmap", None)]


@pytest.mark.parametrize("task,options,engine,batch", CASES)
def test_member_in_a_mixed_ensemble_equals_its_run_alone(task, options, engine, batch):
    cfg = TrainConfig(task=task, task_options=dict(options), lr=[0.01, 0.03], weight_decay=[0.0, 0.5],
                      train_frac=[0.5, 1.0], steps=40, log_every=5, batch_size=batch, engine=engine,
                      warmup=5, schedule="cosine")
    plan, mixed = _run(cfg)
    assert len(plan.members) == 8
    for j, m in enumerate(plan.members):
        _, alone = _run(_alone(cfg, m))
        for key in ("norm", "train_loss", "test_loss", "train_acc"):
            np.testing.assert_allclose(mixed[key][j], alone[key][0], rtol=2e-5, atol=1e-7, err_msg=f"{m.name} {key}")
    finals = mixed["train_loss"][:, -1]
    assert len({round(float(v), 7) for v in finals}) == 8  # every axis changes the run


@pytest.mark.parametrize("batch", [None, 4])
def test_a_training_share_equals_a_task_holding_only_that_share(batch):
    share = TrainConfig(task="tasks_for_tests:tiny", train_frac=[0.5], steps=30, log_every=3, batch_size=batch,
                        lr=[0.02], weight_decay=[0.1])
    head = TrainConfig(task="tasks_for_tests:tiny_head", task_options={"keep": 16}, steps=30, log_every=3,
                       batch_size=batch, lr=[0.02], weight_decay=[0.1])
    _, a = _run(share)
    _, b = _run(head)
    for key in ("norm", "train_loss", "test_loss"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_names_and_attributes_say_each_members_values(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", "--lr", "0.01,0.03", "--train-frac", "0.25,1",
                 "--steps", "5", "--quiet", "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        names = sorted(f["trajectories"])
        assert names == ["lr0.01_wd0_init1_frac0.25_seed0", "lr0.01_wd0_init1_frac1_seed0",
                         "lr0.03_wd0_init1_frac0.25_seed0", "lr0.03_wd0_init1_frac1_seed0"]
        g = f["trajectories/lr0.03_wd0_init1_frac0.25_seed0"]
        assert g.attrs["lr"] == 0.03 and g.attrs["train_frac"] == 0.25 and g.attrs["train_examples"] == 8
    # one value per axis keeps the names files have always had
    out2 = tmp_path / "u.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", "--lr", "0.03", "--steps", "3", "--quiet",
                 "--out", str(out2)]) == 0
    with h5py.File(out2, "r") as f:
        assert list(f["trajectories"]) == ["wd0_init1_seed0"]
        assert f["trajectories/wd0_init1_seed0"].attrs["lr"] == 0.03


def test_a_rerun_with_another_lr_is_refused_not_resumed(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", "--steps", "3", "--quiet", "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["train", "--task", "tasks_for_tests:tiny", "--lr", "0.05", "--steps", "3", "--quiet",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lr" in err
    assert out.read_bytes() == before


@pytest.mark.parametrize("flag,value", [("--train-frac", "0"), ("--train-frac", "1.5"), ("--train-frac", "-0.2"),
                                        ("--lr", "0"), ("--lr", "1e-3,-1")])
def test_bad_per_member_values(tmp_path, capsys, flag, value):
    out = tmp_path / "t.h5"
    assert main(["train", "--task", "tasks_for_tests:tiny", flag, value, "--steps", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()

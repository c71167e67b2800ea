"""The metric registry: a trajectory metric is one registered function, and it reaches the file, info and figures."""

import h5py
import numpy as np
import torch

from landscape import metrics, store
from landscape.experiments import train
from landscape.cli import main
from landscape.config.settings import TrainConfig
from landscape.tasks import get_task
from training import train_until

TRAIN = ["train", "--task", "tasks_for_tests:tiny", "--weight-decay", "0.1,1", "--init-scale", "3", "--steps", "60",
         "--log-every", "10", "--checkpoint-every", "20", "--quiet"]


def test_group_norms_are_logged_for_every_trajectory(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main([*TRAIN, "--out", str(out)]) == 0
    trajs = store.read_trajectories(out)
    assert len(trajs) == 2
    for t in trajs:
        assert {"group_norm/0", "group_norm/2"} <= set(t["series"])  # Linear layers 0 and 2 of the Sequential
        # the groups partition the parameters: their squared norms add up to the whole norm's
        total = t["group_norm/0"] ** 2 + t["group_norm/2"] ** 2
        np.testing.assert_allclose(total, t["norm"] ** 2, rtol=1e-5)
        assert len(t["group_norm/0"]) == len(t["step"]) == 7
    with h5py.File(out) as f:
        ds = f[f"trajectories/{trajs[0]['name']}/group_norm/0"]
        assert "module 0 (parameters 0.*)" in ds.attrs["description"] and ds.attrs["units"] == "L2 norm"
        assert ds.dims[0][0].name.endswith("/step")  # the step dimension scale is attached
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "group_norm/0" in text and "module 2 (parameters 2.*)" in text
    assert main(["plot", str(out), "-o", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t-metrics.png").stat().st_size > 1000


def test_groups_follow_the_model():
    for task, options, groups in (("modular", {"p": 7}, {"embed", "mlp"}), ("teacher-student", {}, {"0", "2", "4"})):
        cfg = TrainConfig(task=task, task_options=options)
        plan = train.make_plan(cfg, get_task(task, options))
        assert {k.split("/")[1] for k in plan.series if k.startswith("group_norm/")} == groups


def test_a_registered_metric_reaches_the_file_and_info(tmp_path, capsys, monkeypatch):
    """Registering is the whole change: no list elsewhere has to learn the new name."""
    metrics.registered()  # load the built-in ones first
    monkeypatch.setitem(metrics.REGISTRY, "weight_sum", metrics.Metric(
        "weight_sum", "sum of all parameters (a test metric)", "", lambda ctx: ctx.theta.sum(-1)))
    out = tmp_path / "m.h5"
    assert main([*TRAIN, "--out", str(out)]) == 0
    t = store.read_trajectories(out)[0]
    assert np.isfinite(t["weight_sum"]).all() and len(t["weight_sum"]) == len(t["step"])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "sum of all parameters" in capsys.readouterr().out


def test_a_file_written_before_a_metric_existed_reads_and_resumes(tmp_path, capsys):
    """An older file has no group_norm series: it is absent when read, and a resumed run adds it."""
    old, clean = tmp_path / "old.h5", tmp_path / "clean.h5"
    cfg = TrainConfig(task="tasks_for_tests:tiny", weight_decay=[0.1, 1.0], init_scale=[3.0], steps=60,
                      log_every=10, checkpoint_every=20)
    names = train_until(old, cfg, checkpoints=1)
    with h5py.File(old, "r+") as f:  # as written before the metric existed
        for n in names:
            del f[f"trajectories/{n}/group_norm"]
    t = store.read_trajectories(old)[0]
    assert "group_norm/0" not in t and "group_norm/0" not in t["series"] and len(t["norm"]) == len(t["step"])
    assert main(["info", str(old)]) == 0 and main(["plot", str(old), "-o", str(tmp_path / "o.png")]) == 0
    assert main([*TRAIN, "--out", str(old)]) == 0
    assert main([*TRAIN, "--out", str(clean)]) == 0
    for a, b in zip(store.read_trajectories(old), store.read_trajectories(clean)):
        np.testing.assert_array_equal(a["step"], b["step"])
        for key in ("norm", "train_loss", "test_loss"):
            np.testing.assert_array_equal(a[key], b[key])
        resumed = a["step"] > 20  # logged after the resume: the new series is there
        np.testing.assert_array_equal(a["group_norm/0"][resumed], b["group_norm/0"][resumed])
        assert np.isnan(a["group_norm/0"][~resumed]).all()


def test_metric_context_evaluates_each_split_once():
    """On every engine (the loop one too) a split's losses come from the one forward pass the metrics share."""
    calls = []

    class Ensemble:
        engine = "loop"
        module = torch.nn.Linear(1, 1)

        def forward(self, theta, x, probe=None):
            calls.append(len(x))
            return torch.zeros(theta.shape[0], len(x), 1), None

    class Task:
        structure = {}

        @staticmethod
        def member_metrics(out, y, keep=None):
            return ((out - y) ** 2).mean(), torch.zeros(())

    class Worker:
        layout = mask = keep = None
        task, ensemble = Task(), Ensemble()
        data = {"train": (torch.zeros(4, 1), torch.ones(4, 1)), "test": (torch.zeros(5, 1), torch.ones(5, 1))}

    ctx = metrics.Context(torch.zeros(2, 3), Worker())
    for _ in range(3):
        loss, _ = ctx.evaluate("train")
        ctx.evaluate("test")
    assert calls == [4, 5] and loss.tolist() == [1.0, 1.0]


def test_on_the_vmap_engine_the_losses_come_from_the_shared_forward_pass():
    from landscape.engine import worker as loop
    from landscape.tasks import contract, get_task

    task = get_task("modular", {"p": 11})
    module, layout, _, _ = loop.model_of(task, "*", "auto", 0)
    worker = loop.Worker(task, module, layout)
    assert worker.ensemble.engine == "vmap"
    theta = torch.stack([loop.init_params(task, layout, s)[1] for s in range(3)])
    ctx = metrics.Context(theta, worker, contract.probe_of(module, task.structure))
    for split in ("train", "test"):
        for got, want in zip(ctx.evaluate(split), worker.evaluate(theta, split)):
            torch.testing.assert_close(got, want)
        out, hidden = ctx.forward(split)
        assert out.shape == (3, len(worker.data[split][0]), 11) and hidden.shape[:2] == out.shape[:2]
    assert ctx.forward("train") is ctx.forward("train")  # once per context


def test_metric_names_that_would_clash_in_the_file_are_refused():
    import pytest

    metrics.registered()
    for name in ("norm", "step", "seed", "checkpoint_a", "a/b"):
        with pytest.raises(ValueError):
            metrics.metric(name, "clash")(lambda ctx: ctx.theta.sum(-1))

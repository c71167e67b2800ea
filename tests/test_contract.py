"""Your own model, first class: order parameters that are right or refused, engines that fall back, signatures."""

import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import landscape as ls
from landscape import metrics, store
from landscape.cli import main
from landscape.engine.layout import flatten, layout_of
from landscape.engine.worker import Worker
from landscape.tasks import Task, contract
from landscape.tasks.transformer import Transformer as Builtin

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import nanda_transformer as nanda  # noqa: E402


def _series(task, module, theta):
    """Every default metric of ``task`` at ``theta [M, P]``, as numpy."""
    worker = Worker(task, module, layout_of(module), "vmap")
    probe = contract.probe_of(module, task.structure)
    values = metrics.evaluate(metrics.Context(theta, worker, probe), metrics.select(task))
    return {k: v.double().numpy() for k, v in values.items()}


def test_nanda_style_transformer_has_the_builtin_transformers_order_parameters():
    """Given the same weights (the embedding transposed), the example transformer, written as Nanda's original
    with [d_model, vocab] embeddings, hooks and per-position logits, logs what the built-in one logs."""
    p = 11
    task = nanda.make(p=p, train_fraction=0.6, d_model=16, d_mlp=32, heads=2, d_head=8)
    torch.manual_seed(3)
    theirs = task.model()
    ours = Builtin(p + 1, p + 1, 3, 16, 2, 8, 32)
    mapping = {"embed.W_E": "embed.W_E", "embed.W_pos": "pos_embed.W_pos", "unembed.W_U": "unembed.W_U"}
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        mapping[f"attn.{name}"] = f"blocks.0.attn.{name}"
    for name in ("W_in", "b_in", "W_out", "b_out"):
        mapping[f"mlp.{name}"] = f"blocks.0.mlp.{name}"
    source = dict(theirs.named_parameters())
    with torch.no_grad():
        for mine, their in mapping.items():
            value = source[their].T if mine == "embed.W_E" else source[their]
            dict(ours.named_parameters())[mine].copy_(value)
    builtin = Task("builtin", lambda: Builtin(p + 1, p + 1, 3, 16, 2, 8, 32), task.x_train, task.y_train,
                   task.x_test, task.y_test, loss=ls.tasks.cross_entropy, accuracy=ls.tasks.label_accuracy,
                   structure={"modulus": p, "op": "+", "embedding": "embed.W_E", "embedding_axis": 0,
                              "probe_layer": "unembed"})
    x = task.x_test[:5]
    torch.testing.assert_close(theirs(x)[:, -1], ours(x))  # the same function
    a = _series(task, theirs, flatten(theirs, layout_of(theirs))[None])
    b = _series(builtin, ours, flatten(ours, layout_of(ours))[None])
    a, b = ({k: v for k, v in d.items() if not k.startswith("group_norm/")} for d in (a, b))  # modules' names
    assert set(a) == set(b) and {"probe_r2", "restricted_loss", "rqi", "fourier_concentration"} <= set(a)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=1e-6, err_msg=name)


def test_the_embedding_is_read_on_its_token_axis():
    """fourier_concentration of a [d_model, vocab] embedding is the DFT over tokens, computed directly."""
    task = nanda.make(p=11, d_model=16, d_mlp=32, heads=2, d_head=8)
    torch.manual_seed(0)
    model = task.model()
    got = _series(task, model, flatten(model, layout_of(model))[None])["fourier_concentration"][0]
    E = model.embed.W_E.detach().double().numpy().T[:11]
    power = (np.abs(np.fft.rfft(E - E.mean(0), axis=0)[1:6]) ** 2).sum(1)
    assert got == pytest.approx(np.sort(power / power.sum())[::-1][:5].sum(), rel=1e-6)


def _refused(task, match, tmp_path):
    out = tmp_path / "never.h5"
    with pytest.raises(ls.BadInput, match=match) as e:
        ls.train(task, out=out, steps=2, quiet=True)
    assert "\n" not in str(e.value) and not out.exists()  # one line, before any step: nothing written


@pytest.mark.parametrize("change, match", [
    ({"embedding": "embed.W_X"}, r"structure\['embedding'\]='embed.W_X': the model has no such parameter"),
    ({"embedding_axis": 2}, r"structure\['embedding_axis'\]=2 is not an axis of 'embed.W_E', shape \[16, 12\]"),
    ({"embedding_axis": None}, r"axes 0, 1 could each hold the modulus 11 tokens; declare"),
    ({"logits": lambda out: out}, r"structure\['logits'\] gives \[2, 3, 12\] .* expected \[N, classes\]"),
    ({"probe_layer": "blocks.0.nothing"}, r"structure\['probe_layer'\]='blocks.0.nothing': the model has no such"),
    ({"probe_map": None}, r"the probe needs one row per example"),
    ({"embeddings": "embed.W_E"}, r"unknown structure key 'embeddings'"),
])
def test_a_declared_field_that_does_not_fit_is_one_line(change, match, tmp_path):
    task = nanda.make(p=11, d_model=16, d_mlp=32, heads=2, d_head=8)
    structure = dict(task.structure)
    for key, value in change.items():
        if value is None:
            structure.pop(key)
        else:
            structure[key] = value
    if change == {"embedding_axis": None}:  # undeclared on a square embedding: both axes could be tokens
        task.model = lambda: nanda.Transformer(12, d_model=12, d_mlp=32, heads=2, d_head=6)
    if "probe_map" in change:  # [N, 3, d] flattened is fine; an [N]-less output is not
        structure["probe_map"] = lambda h: h[0]
    task.structure = structure
    _refused(task, match, tmp_path)


def test_signatures_and_outputs_are_adapted_or_refused(tmp_path, capsys):
    from tasks_for_tests import needs_hidden, pair

    _refused(pair(), r"returns \(\[2, 1\], \[1\]\), not one tensor: declare Task\(output=", tmp_path)
    _refused(needs_hidden(), r"forward\(x, hidden\) cannot be called as model\(x\)", tmp_path)
    task = pair(adapt=True)
    task.loss = lambda out, y: out.sum(1)  # [N], not a scalar
    _refused(task, r"the task's loss returns \[2\] on output \[2, 1\], expected a scalar", tmp_path)
    run = ls.train(pair(adapt=True), steps=3, quiet=True)  # adapted: trains, on the vmap engine
    assert np.isfinite(run.train_loss).all()
    assert main(["train", "--task", "tasks_for_tests:needs_hidden", "--steps", "2", "--out",
                 str(tmp_path / "c.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "forward(x, hidden)" in err and "Traceback" not in err


def test_a_model_vmap_cannot_batch_trains_and_scans_on_auto_with_the_note(tmp_path, capsys):
    """nn.LSTM has no batching rule: auto says so once and runs it on the loop engine, metrics included."""
    out = tmp_path / "l.h5"
    assert main(["train", "--task", "tasks_for_tests:lstm", "--steps", "6", "--log-every", "3", "--weight-decay",
                 "0,0.1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("vmap cannot batch this model") == 1 and "runs on the loop engine" in err
    assert "metrics skipped" in err and "rqi" in err
    for t in store.read_trajectories(out):
        assert np.isfinite(t["train_loss"]).all() and np.isfinite(t["probe_r2"]).all()
    assert main(["scan", "--task", "tasks_for_tests:lstm", "--norms", "0.5:2:2", "--steps", "3", "--quiet",
                 "--out", str(out)]) == 0
    assert np.isfinite(store.read_scan(out)["train_loss"]).all()
    assert main(["train", "--task", "tasks_for_tests:lstm", "--engine", "vmap", "--steps", "2", "--out",
                 str(tmp_path / "v.h5")]) == 2
    assert "--engine vmap cannot batch this model" in capsys.readouterr().err
    import h5py

    with h5py.File(out) as f:
        assert "rqi" in f["trajectories"].attrs["skipped_metrics"]


def test_a_failed_run_is_rerun_with_other_settings_without_overwrite_and_keeps_its_checkpoints(tmp_path, capsys):
    base = ["train", "--task", "tasks_for_tests:flaky", "--engine", "loop", "--log-every", "4", "--quiet"]
    out = tmp_path / "f.h5"
    assert main([*base, "--out", str(out), "--checkpoint-every", "500", "--steps", "100"]) == 2  # before a checkpoint
    assert "this model broke midway" in capsys.readouterr().err
    assert not out.exists()  # nothing left that blocks the rerun
    assert main([*base, "--out", str(out), "--steps", "8"]) == 0
    assert [t["status"] for t in store.read_trajectories(out)] == ["done"]

    out = tmp_path / "g.h5"  # breaks after checkpoints: they stay, and the same command resumes from the last one
    run = [*base, "--out", str(out), "--checkpoint-every", "5", "--steps", "60"]
    reached = []
    for _ in range(10):
        code = main(run)
        with h5py.File(out, "r") as f:
            [g] = f["trajectories"].values()
            reached.append(int(g.attrs["checkpoint_step"]))
        if code == 0:
            break
        assert code == 2 and "this model broke midway" in capsys.readouterr().err
    assert code == 0 and reached[0] > 0 and reached == sorted(reached) and reached[-1] == 60
    assert [t["status"] for t in store.read_trajectories(out)] == ["done"]


@pytest.mark.parametrize("kind, words", [("nan", "y_train holds NaN or infinite values (1 of 20)"),
                                         ("complex", "y_train is complex64"), ("bool", "x_train is bool")])
def test_a_tasks_data_is_real_and_finite_or_refused_in_one_line_naming_the_array(kind, words):
    """Issue 31: complex, boolean or non-finite data from a task function is refused when the task is built."""
    from landscape.tasks import Task, TaskError, get_task, holding, mlp, mse

    x, y = torch.randn(20, 3), torch.randn(20, 1)
    if kind == "nan":
        y[3] = float("nan")
    elif kind == "complex":
        y = y.to(torch.complex64)
    else:
        x = x > 0
    task = Task(name=f"bad-{kind}", model=lambda: mlp([3, 8, 1]), x_train=x, y_train=y, x_test=x, y_test=y, loss=mse)
    with pytest.raises(TaskError, match=re.escape(words)), holding(task):
        get_task(task.name)

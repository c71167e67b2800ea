"""Nanda et al. (2023)'s transformer on modular arithmetic: shapes, initialization, the last-position shortcut,
and the vmap and loop engines agreeing."""

import math

import numpy as np
import pytest
import torch

from landscape.experiments import train
from landscape.config.settings import TrainConfig
from landscape.tasks import get_task

SMALL = {"model": "transformer", "p": 11, "d_model": 16, "heads": 2, "d_head": 8, "d_mlp": 32}


def test_tokens_and_shapes_follow_nanda():
    task = get_task("modular", {"model": "transformer"})
    assert task.options["p"] == 113 and task.options["train_fraction"] == 0.3
    assert task.x_train.shape == (round(0.3 * 113 * 113), 3)
    assert (task.x_train[:, 2] == 113).all() and task.x_train[:, :2].max() < 113  # a b =
    assert torch.equal(task.y_train, (task.x_train[:, 0] + task.x_train[:, 1]) % 113)
    torch.manual_seed(0)
    model = task.model()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {"embed.W_E": (114, 128), "embed.W_pos": (3, 128), "attn.W_Q": (4, 32, 128),
                      "attn.W_K": (4, 32, 128), "attn.W_V": (4, 32, 128), "attn.W_O": (128, 128),
                      "mlp.W_in": (512, 128), "mlp.b_in": (512,), "mlp.W_out": (128, 512), "mlp.b_out": (128,),
                      "unembed.W_U": (128, 113)}
    params = dict(model.named_parameters())
    assert params["embed.W_E"].std().item() == pytest.approx(1 / math.sqrt(128), rel=0.05)
    assert params["mlp.W_in"].std().item() == pytest.approx(1 / math.sqrt(128), rel=0.05)
    assert params["unembed.W_U"].std().item() == pytest.approx(1 / math.sqrt(113), rel=0.05)
    assert params["mlp.b_in"].abs().max().item() == 0
    assert model(task.x_train[:5]).shape == (5, 113)


def _nanda_reference(model, tokens):
    """Nanda's forward as published: every position, causal attention, logits read at the last position."""
    p = dict(model.named_parameters())
    x = p["embed.W_E"][tokens] + p["embed.W_pos"]  # [N, T, d]
    heads, d_head, _ = p["attn.W_K"].shape
    q = torch.einsum("ihd,bpd->biph", p["attn.W_Q"], x)
    k = torch.einsum("ihd,bpd->biph", p["attn.W_K"], x)
    v = torch.einsum("ihd,bpd->biph", p["attn.W_V"], x)
    scores = torch.einsum("biph,biqh->biqp", k, q)
    T = tokens.shape[1]
    mask = torch.tril(torch.ones(T, T))
    scores = torch.tril(scores) - 1e10 * (1 - mask)
    attn = torch.softmax(scores / math.sqrt(d_head), dim=-1)
    z = torch.einsum("biph,biqp->biqh", v, attn)
    z = z.permute(0, 2, 1, 3).reshape(*z.shape[:1], T, heads * d_head)
    x = x + z @ p["attn.W_O"].T
    x = x + torch.relu(x @ p["mlp.W_in"].T + p["mlp.b_in"]) @ p["mlp.W_out"].T + p["mlp.b_out"]
    return (x @ p["unembed.W_U"])[:, -1]


def test_last_position_shortcut_equals_the_full_causal_model():
    task = get_task("modular", {"model": "transformer", "p": 23})
    torch.manual_seed(1)
    model = task.model()
    with torch.no_grad():
        ours, ref = model(task.x_train), _nanda_reference(model, task.x_train)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    loss = task.loss(model(task.x_train), task.y_train)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref_grads = torch.autograd.grad(task.loss(_nanda_reference(model, task.x_train), task.y_train),
                                    list(model.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def _series(engine, **extra):
    cfg = TrainConfig(task="modular", task_options=dict(SMALL), init_scale=[1.0, 2.0], weight_decay=[0.0, 1.0],
                      lr=1e-3, betas=[0.9, 0.98], warmup=3, steps=12, log_every=1, engine=engine, **extra)
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    logs = []
    train.run(plan, plan.members, train.fresh_state(plan, plan.members), on_checkpoint=lambda st, lg: logs.append(lg))
    return {k: np.concatenate([lg.arrays()[k] for lg in logs if len(lg)], axis=1) for k in plan.series}


@pytest.mark.parametrize("fix_norm", [False, True])
def test_vmap_and_loop_engines_agree_on_a_short_run(fix_norm):
    a, b = _series("vmap", fix_norm=fix_norm), _series("loop", fix_norm=fix_norm)
    assert a["train_loss"].shape == (4, 13)
    for key in ("train_loss", "test_loss", "norm", "train_acc"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert not np.allclose(a["train_loss"][:, 0], a["train_loss"][:, -1])  # it trained
    if fix_norm:  # every step on the sphere of the initial norm
        w = a["constrained_norm"]
        assert np.abs(w / w[:, :1] - 1).max() <= 1e-5


def test_a_stopped_transformer_run_resumes_exactly(tmp_path):
    from landscape import store
    from landscape.cli import main
    from training import train_until

    opts = [f"{k}={v}" for k, v in SMALL.items()]
    args = ["train", "--task", "modular", *[a for o in opts for a in ("--task-opt", o)], "--steps", "30",
            "--lr", "1e-3", "--betas", "0.9,0.98", "--warmup", "5", "--weight-decay", "1", "--log-every", "3",
            "--checkpoint-every", "10", "--quiet"]
    cfg = TrainConfig(task="modular", task_options=dict(SMALL), steps=30, lr=1e-3, betas=[0.9, 0.98], warmup=5,
                      weight_decay=[1.0], log_every=3, checkpoint_every=10)
    stopped, whole = tmp_path / "stopped.h5", tmp_path / "whole.h5"
    train_until(stopped, cfg, checkpoints=1)
    assert store.read_trajectories(stopped)[0]["status"] == "running"
    assert main([*args, "--out", str(stopped)]) == 0
    assert main([*args, "--out", str(whole)]) == 0
    a, b = store.read_trajectories(stopped)[0], store.read_trajectories(whole)[0]
    assert a["status"] == b["status"] == "done"
    for key in ("step", "train_loss", "test_acc", "norm"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

"""Models nobody here wrote, at the edges: what the loop engine, the contract and the metrics do with them."""

import collections

import numpy as np
import pytest
import torch

from landscape.engine import worker as loop
from landscape import metrics, store
from landscape.cli import main
from landscape.engine.ensemble import Ensemble
from landscape.engine.layout import flatten, layout_of
from landscape.tasks import Task, TaskError, contract, mse


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)
    return x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 8), torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_the_loop_engine_follows_each_member_whatever_storage_the_module_moves_its_weights_to():
    """cuDNN's ``flatten_parameters`` (an LSTM on CUDA, after a functional call) re-points the parameters at a new
    buffer; every member's parameters must still reach the module."""
    task = Task("t", Net, *_data(), loss=mse)
    module = Net()
    layout = layout_of(module)
    theta = torch.randn(3, layout.size)
    ens = Ensemble(task, module, layout, "loop")
    before = ens.grad(theta, task.x_train, task.y_train)
    with torch.no_grad():
        for p in module.parameters():
            p.data = p.data.clone()  # what flatten_parameters does
    after = ens.grad(theta, task.x_train, task.y_train)
    torch.testing.assert_close(before, after)
    reference = Ensemble(task, Net(), layout, "vmap").grad(theta, task.x_train, task.y_train)
    torch.testing.assert_close(after, reference)


class Unused(Net):
    def __init__(self):
        super().__init__()
        self.spare = torch.nn.Parameter(torch.ones(2))


def test_a_parameter_the_loss_never_reaches_has_a_zero_gradient_on_every_engine():
    task = Task("t", Unused, *_data(), loss=mse)
    module = Unused()
    layout = layout_of(module)
    theta = torch.randn(2, layout.size)
    looped = Ensemble(task, module, layout, "loop").grad(theta, task.x_train, task.y_train)
    batched = Ensemble(task, Unused(), layout, "vmap").grad(theta, task.x_train, task.y_train)
    torch.testing.assert_close(looped, batched)
    assert layout.names[0] == "spare" and (looped[0][:, :2] == 0).all()  # a module's own parameters come first


def test_one_training_example_keeps_a_batchable_model_on_vmap():
    x, y, xt, yt = _data()
    task = Task("t", Net, x[:1], y[:1], xt, yt, loss=mse)
    _, _, engine, note = loop.model_of(task, "*", "vmap", 0)
    assert engine == "vmap" and note is None


@pytest.mark.parametrize("layer, named", [(torch.nn.Dropout(0.1), "Dropout 'drop' with p=0.1"),
                                          (torch.nn.BatchNorm1d(8), "BatchNorm1d 'drop'")])
def test_modules_that_act_differently_in_training_are_refused_in_one_line(layer, named, tmp_path):
    class Stochastic(Net):
        def __init__(self):
            super().__init__()
            self.drop = layer

        def forward(self, x):
            return self.b(self.drop(torch.tanh(self.a(x))))

    task = Task("t", Stochastic, *_data(), loss=mse)
    with pytest.raises(TaskError, match=f"act differently in training and evaluation \\({named}\\)"):
        loop.model_of(task, "*", "auto", 0)
    quiet = Task("t", lambda: torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.0), torch.nn.Linear(4, 1)),
                 *_data(), loss=mse)
    loop.model_of(quiet, "*", "auto", 0)  # p = 0 is no dropout


class Latents(torch.nn.Module):
    """The last nn.Linear projects learned latents, not the examples: the default probe does not apply."""

    def __init__(self):
        super().__init__()
        self.enc, self.q = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
        self.latents = torch.nn.Parameter(torch.randn(5, 3))

    def forward(self, x):
        return (torch.tanh(self.enc(x)) @ self.q(self.latents).T).mean(-1, keepdim=True)


def test_the_probe_is_read_only_when_a_chosen_metric_reads_it(tmp_path):
    task = Task("t", Latents, *_data(), loss=mse)
    assert "probe_r2" in metrics.skipped(task)
    with tasks_for(task):
        assert main(["train", "--task", "edge_task:make", "--steps", "4", "--quiet", "--out",
                     str(tmp_path / "p.h5")]) == 0


def _item_loss(out, y):  # Python control flow on a value: ordinary autograd runs it, vmap cannot
    e = ((out - y) ** 2).mean()
    return e if e.item() < 1e6 else e * 0


def test_a_loss_vmap_cannot_batch_runs_on_the_loop_engine_evaluations_included(tmp_path, capsys):
    task = Task("t", Net, *_data(), loss=_item_loss)
    with tasks_for(task):
        assert main(["train", "--task", "edge_task:make", "--steps", "4", "--log-every", "2", "--out",
                     str(tmp_path / "i.h5")]) == 0
    assert "vmap cannot batch this model or its loss" in capsys.readouterr().err
    [t] = store.read_trajectories(tmp_path / "i.h5")
    assert t["status"] == "done" and np.isfinite(t["train_loss"]).all() and len(t["train_loss"]) == 3


class Tokens(torch.nn.Module):
    def __init__(self, p=5):
        super().__init__()
        self.embed, self.out = torch.nn.Embedding(p, 4), torch.nn.Linear(8, p)

    def forward(self, x):
        return self.out(self.embed(x).flatten(1))


def test_operands_that_are_not_integers_skip_the_progress_measures_with_the_reason():
    p = 5
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x, y = torch.stack([a.flatten(), b.flatten()], 1), (a.flatten() + b.flatten()) % p
    structure = {"modulus": p, "op": "+", "embedding": "embed.weight"}
    split = (x[:15], y[:15], x[15:], y[15:])  # every pair once
    task = Task("t", Tokens, *split, loss=torch.nn.functional.cross_entropy, structure=structure)
    assert "restricted_loss" not in metrics.skipped(task)
    shifted = {**structure, "operands": lambda x: (x[:, 0] + 0.25, x[:, 1].float())}
    task = Task("t", Tokens, *split, loss=torch.nn.functional.cross_entropy, structure=shifted)
    assert "integer operands" in metrics.skipped(task)["restricted_loss"]


def test_a_frozen_embedding_is_refused_before_any_step():
    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(7, 4)
            self.embed.weight.requires_grad_(False)
            self.out = torch.nn.Linear(8, 7)

        def forward(self, x):
            return self.out(self.embed(x).flatten(1))

    x = torch.randint(0, 7, (10, 2))
    task = Task("t", Frozen, x, x[:, 0], x, x[:, 0], loss=torch.nn.functional.cross_entropy,
                structure={"modulus": 7, "embedding": "embed.weight"})
    with pytest.raises(TaskError, match="frozen parameter"):
        loop.model_of(task, "*", "auto", 0)


Pair = collections.namedtuple("Pair", ["tokens", "scale"])


class Named(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x.tokens) * x.scale[:, None]


def test_namedtuple_inputs_are_batched_and_sliced_like_tuples(tmp_path):
    x, y, xt, yt = _data()
    task = Task("t", Named, Pair(x, torch.ones(len(x))), y, Pair(xt, torch.ones(len(xt))), yt, loss=mse)
    with tasks_for(task):
        assert main(["train", "--task", "edge_task:make", "--steps", "4", "--batch-size", "4", "--quiet", "--out",
                     str(tmp_path / "n.h5")]) == 0
    module = Named()
    worker = loop.Worker(task, module, layout_of(module))
    theta = flatten(module, layout_of(module))[None]
    assert worker.grad(theta, torch.zeros(1, 4, dtype=torch.long))[0].shape == theta.shape
    assert contract.sample(task).out.shape == (2, 1)


class tasks_for:
    """``--task edge_task:make`` returns ``task`` while the block runs."""

    def __init__(self, task):
        self.task = task

    def __enter__(self):
        import sys
        import types

        module = types.ModuleType("edge_task")
        module.make = lambda: self.task
        sys.modules["edge_task"] = module

    def __exit__(self, *exc):
        import sys

        sys.modules.pop("edge_task", None)

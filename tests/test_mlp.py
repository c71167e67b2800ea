"""The hand-batched MLP kernel against the torch.func (vmap) kernel, and the engines built on it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.engine import mlp
from landscape.experiments import scan, train
from landscape import store
from landscape.cli import main
from landscape.config.settings import ScanConfig, TrainConfig
from landscape.engine.ensemble import Ensemble, engine_of
from landscape.engine.layout import layout_of
from landscape.engine.worker import init_params
from landscape.tasks import Task, cross_entropy, get_task, label_accuracy, mse


def _task(model, loss=mse, out=3, labels=False, accuracy=None, n=24, shape=(5,)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * n, *shape, generator=g)
    y = torch.randint(0, out, (2 * n,), generator=g) if labels else torch.randn(2 * n, out, generator=g)
    return Task("t", model, x[:n], y[:n], x[n:], y[n:], loss=loss, accuracy=accuracy)


def _custom_loss(out, target):
    return (out - target).abs().pow(1.5).mean() + 0.1 * out.pow(2).sum(-1).mean()


CASES = {
    "tanh-mse": _task(lambda: torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))),
    "relu-nobias-sigmoid-out": _task(lambda: torch.nn.Sequential(
        torch.nn.Linear(5, 16, bias=False), torch.nn.ReLU(), torch.nn.Linear(16, 7), torch.nn.ReLU(),
        torch.nn.Linear(7, 3), torch.nn.Sigmoid())),
    "one-unit-output": _task(lambda: torch.nn.Sequential(torch.nn.Linear(5, 30), torch.nn.Tanh(), torch.nn.Linear(30, 1)),
                             out=1),
    "cross-entropy": _task(lambda: torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)),
                           loss=cross_entropy, out=4, labels=True, accuracy=label_accuracy),
    "custom-loss": _task(lambda: torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)),
                         loss=_custom_loss),
    # Omnigrok's MNIST MLP in small: images [N, 1, 8, 8] flattened by the model
    "flatten-images": _task(lambda: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 4)), loss=cross_entropy, out=4, labels=True, accuracy=label_accuracy, shape=(1, 8, 8)),
    "identity-anywhere": _task(lambda: torch.nn.Sequential(
        torch.nn.Identity(), torch.nn.Flatten(), torch.nn.Identity(), torch.nn.Linear(24, 16), torch.nn.Identity(),
        torch.nn.Tanh(), torch.nn.Identity(), torch.nn.Linear(16, 3), torch.nn.Identity()), shape=(2, 3, 4)),
}


def _ensembles(task, members=6):
    module = task.model()
    layout = layout_of(module)
    theta = torch.stack([init_params(task, layout, s)[1] * (1 + s) for s in range(members)])
    return Ensemble(task, module, layout, "mlp"), Ensemble(task, module, layout, "vmap"), theta


@pytest.mark.parametrize("name", CASES)
def test_mlp_kernel_equals_vmap(name):
    task = CASES[name]
    fast, ref, theta = _ensembles(task)
    assert fast.engine == "mlp" and ref.engine == "vmap"
    g1, l1 = fast.grad(theta, task.x_train, task.y_train)
    g2, l2 = ref.grad(theta, task.x_train, task.y_train)
    assert g1.shape == g2.shape == theta.shape
    assert float(g2.norm()) > 0
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    # minibatches: every member its own rows
    idx = torch.randint(0, len(task.x_train), (theta.shape[0], 8), generator=torch.Generator().manual_seed(1))
    g1, l1 = fast.grad(theta, task.x_train[idx], task.y_train[idx], per_member=True)
    g2, l2 = ref.grad(theta, task.x_train[idx], task.y_train[idx], per_member=True)
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    for a, b in zip(fast.metrics(theta, task.x_test, task.y_test), ref.metrics(theta, task.x_test, task.y_test)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_builtin_models_are_chains_and_others_are_not():
    for name, options in [("teacher-student", {}), ("digits", {"n_train": 100})]:
        task = get_task(name, options)
        module = task.model()
        assert mlp.chain_of(module, layout_of(module)) is not None, name
    modular = get_task("modular", {"p": 7})
    module = modular.model()
    assert mlp.chain_of(module, layout_of(module)) is None  # an embedding first
    for layers in ([torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 1)],
                   [torch.nn.Linear(3, 4), torch.nn.Dropout(0.1), torch.nn.Linear(4, 1)],
                   [torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Tanh(), torch.nn.Linear(4, 1)]):
        module = torch.nn.Sequential(*layers)
        assert mlp.chain_of(module, layout_of(module)) is None
    frozen = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    frozen[0].bias.requires_grad_(False)  # not in the layout: the flat vector would not cover the model
    assert mlp.chain_of(frozen, layout_of(frozen)) is None


def test_shape_only_modules_keep_an_mlp_on_the_mlp_engine():
    task = CASES["flatten-images"]
    module = task.model()
    layout = layout_of(module)
    fast, ref = Ensemble(task, module, layout), Ensemble(task, module, layout, "vmap")
    assert fast.engine == "mlp" and engine_of(module, layout, "auto", task) == "mlp"
    theta = torch.stack([init_params(task, layout, s)[1] for s in range(3)])
    out, seen = fast.chain.forward(theta, task.x_train, keep=True)
    assert seen[0].shape == (3, len(task.x_train), 64)  # the gradient's first layer reads the flattened images
    torch.testing.assert_close(seen[0][1], task.x_train.flatten(1))
    torch.testing.assert_close(fast.forward(theta, task.x_test)[0], ref.forward(theta, task.x_test)[0])
    identity = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Identity(), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    assert engine_of(identity, layout_of(identity), "auto", CASES["tanh-mse"]) == "mlp"


@pytest.mark.parametrize("layers", [
    [torch.nn.Flatten(start_dim=2), torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)],
    [torch.nn.Flatten(1, 3), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)],  # rank-dependent
    [torch.nn.Flatten(0), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)],
    [torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Flatten(), torch.nn.ReLU(), torch.nn.Linear(16, 4)],
    [torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4), torch.nn.Flatten()],
    [torch.nn.Flatten(), torch.nn.Identity()],  # no Linear at all
    [torch.nn.Unflatten(1, (1, 64)), torch.nn.Flatten(), torch.nn.Linear(64, 4)],
], ids=["start_dim=2", "end_dim=3", "start_dim=0", "after-linear", "last", "no-linear", "unflatten"])
def test_other_shape_modules_are_not_chains(layers):
    module = torch.nn.Sequential(*layers)
    assert mlp.chain_of(module, layout_of(module)) is None
    assert engine_of(module, layout_of(module), "auto", CASES["flatten-images"]) == "vmap"


def test_hooked_flatten_is_not_a_chain():
    module = CASES["flatten-images"].model()
    module[0].register_forward_hook(lambda m, inputs, output: 2 * output)
    assert mlp.chain_of(module, layout_of(module)) is None


def _three_layers():
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.ReLU(),
                               torch.nn.Linear(4, 1))


def test_models_that_compute_something_else_are_not_chains():
    act, lin = torch.nn.ReLU(), torch.nn.Linear(4, 4)
    shared_act = torch.nn.Sequential(torch.nn.Linear(4, 4), act, torch.nn.Linear(4, 4), act, torch.nn.Linear(4, 1))
    tied = torch.nn.Sequential(lin, torch.nn.Tanh(), lin)
    hooked = _three_layers()
    hooked[2].register_forward_hook(lambda module, inputs, output: 2 * output)
    pre_hooked = _three_layers()
    pre_hooked.register_forward_pre_hook(lambda module, inputs: (inputs[0] + 1,))
    patched = _three_layers()
    patched[1].forward = lambda z: z.abs()
    for name, model in [("shared activation", shared_act), ("tied layer", tied), ("forward hook", hooked),
                        ("pre-hook", pre_hooked), ("instance forward", patched)]:
        assert mlp.chain_of(model, layout_of(model)) is None, name
        assert Ensemble(CASES["tanh-mse"], model, layout_of(model)).engine == "vmap", name
    assert mlp.chain_of(_three_layers(), layout_of(_three_layers())) is not None


def test_targets_the_closed_forms_do_not_cover_fall_back_to_torch_func():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=g)
    model = CASES["tanh-mse"].model
    cases = [
        Task("f64", model, x, torch.randn(16, 3, generator=g, dtype=torch.float64),
                                        x, torch.randn(16, 3, generator=g, dtype=torch.float64), loss=mse),
        Task("ignored", model, x, torch.tensor([0, 1, -100, 2] * 4), x, torch.tensor([2, -100, 1, 0] * 4),
             loss=cross_entropy, accuracy=None),
    ]
    for task in cases:
        fast, ref, theta = _ensembles(task)
        g1, l1 = fast.grad(theta, task.x_train, task.y_train)
        g2, l2 = ref.grad(theta, task.x_train, task.y_train)
        torch.testing.assert_close(l1, l2.to(l1.dtype), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_unknown_kernel_is_refused():
    task = CASES["tanh-mse"]
    with pytest.raises(ValueError, match="unknown engine"):
        Ensemble(task, task.model(), layout_of(task.model()), "fast")


def test_tanh_written_through_sigmoid_is_tanh():
    z = torch.linspace(-20, 20, 100001)
    torch.testing.assert_close(mlp._tanh_(z.clone()), torch.tanh(z), rtol=0, atol=3e-7)


def test_cross_entropy_gradient_matches_autograd():
    out = torch.randn(3, 10, 6, requires_grad=True)
    y = torch.randint(0, 6, (10,))
    loss = torch.stack([F.cross_entropy(out[m], y) for m in range(3)])
    (expected,) = torch.autograd.grad(loss.sum(), out)
    d, value = mlp._cross_entropy_grad(out.detach(), y)
    torch.testing.assert_close(value, loss.detach())
    torch.testing.assert_close(d, expected)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_scan_engines_agree(batch_size):
    cfg = ScanConfig(norms="0.3:3:3:log", steps=40, restarts=2, batch_size=batch_size, history=10)
    plan = scan.make_plan(cfg, get_task("teacher-student"))
    points = np.arange(plan.n_points)
    fast = scan.run_chunk(plan, points, engine="mlp")
    auto = scan.run_chunk(plan, points, engine="auto")
    ref = scan.run_chunk(plan, points, engine="vmap")
    np.testing.assert_array_equal(fast.train_loss, auto.train_loss)
    for name in ("train_loss", "test_loss"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-4, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(fast.history[1], ref.history[1], rtol=1e-4, atol=1e-7)


def test_train_engines_agree():
    cfg = TrainConfig(task="digits", task_options={"n_train": 100}, init_scale=[2.0], weight_decay=[0.0, 0.3],
                      lr=0.003, steps=30, log_every=10, batch_size=20)
    results = {}
    for engine in ("mlp", "vmap"):
        cfg.engine = engine
        plan = train.make_plan(cfg, get_task("digits", {"n_train": 100}))
        logs = []
        train.run(plan, plan.members, train.fresh_state(plan, plan.members), engine=engine,
                  on_checkpoint=lambda st, log, logs=logs: logs.append(log))
        results[engine] = np.concatenate([log.arrays()["train_loss"] for log in logs if len(log)], axis=1)
    np.testing.assert_allclose(results["mlp"], results["vmap"], rtol=1e-4)
    assert results["mlp"][0, -1] < results["mlp"][0, 0]


def test_train_loop_engine_equals_default_engine(tmp_path):
    args = ["train", "--task", "tasks_for_tests:tiny", "--weight-decay", "0,0.5", "--init-scale", "3", "--steps", "60",
            "--log-every", "20", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a.h5")]) == 0
    assert main([*args, "--engine", "loop", "--out", str(tmp_path / "b.h5")]) == 0
    a, b = (store.read_trajectories(tmp_path / f"{n}.h5") for n in "ab")
    assert [t["name"] for t in a] == [t["name"] for t in b] and len(a) == 2
    for ta, tb in zip(a, b):
        np.testing.assert_array_equal(ta["step"], tb["step"])
        np.testing.assert_allclose(ta["train_loss"], tb["train_loss"], rtol=1e-4)
        np.testing.assert_allclose(ta["norm"], tb["norm"], rtol=1e-5)
    assert a[0]["train_loss"][-1] < a[0]["train_loss"][0]


def test_mlp_engine_refuses_other_models(tmp_path, capsys):
    code = main(["scan", "--task", "modular", "--task-opt", "p=7", "--engine", "mlp", "--steps", "1",
                 "--norms", "1", "--out", str(tmp_path / "s.h5"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "plain MLP" in err[0]
    assert not (tmp_path / "s.h5").exists()


def test_cli_engine_choices_are_the_kernels():
    from landscape.config import settings as config
    from landscape.engine import ensemble

    assert tuple(config.rule(config.ScanConfig, "engine").choices) == tuple(ensemble.ENGINES)
    assert tuple(config.rule(config.TrainConfig, "engine").choices) == tuple(ensemble.ENGINES)

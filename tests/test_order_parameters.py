"""Order parameters of the token embeddings (issue 13, part 1): known answers, batching, selection, bad input."""

import math

import numpy as np
import pytest
import torch

from landscape import metrics, store
from landscape.experiments import train
from landscape.cli import main
from landscape.config.settings import TrainConfig
from landscape.metrics.embedding import fourier, rqi
from landscape.tasks import get_task

P, D = 59, 32


def _circle(k: int, offset: float = 1.5, radius: float = 3.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(D, 2, generator=g, dtype=torch.float64))
    theta = 2 * math.pi * k * torch.arange(P, dtype=torch.float64) / P
    return radius * (theta.cos()[:, None] * basis[:, 0] + theta.sin()[:, None] * basis[:, 1]) + offset


def _random(seed: int = 1) -> torch.Tensor:
    return torch.randn(P, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _linear(seed: int = 2) -> torch.Tensor:
    v = torch.randn(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.arange(P, dtype=torch.float64)[:, None] * v + 0.3


def test_a_perfect_circle_is_concentrated_and_circular_at_its_frequency():
    f = fourier(torch.stack([_circle(7), _circle(P - 3)]))  # frequency P - 3 is class 3
    np.testing.assert_allclose(f["concentration"], 1, atol=1e-9)
    np.testing.assert_allclose(f["circularity"], 1, atol=1e-9)
    assert f["key"][:, 0].tolist() == [7, 3]
    K = P // 2
    np.testing.assert_allclose(f["gini"], (K - 1) / K, atol=1e-6)  # one frequency: as unequal as it gets
    np.testing.assert_allclose(f["share"][0, 6], 1, atol=1e-9)


def test_an_ellipse_is_concentrated_but_less_circular():
    E = _circle(5)
    E = E + 2 * (E - E.mean(0)) @ torch.outer(torch.eye(D, dtype=torch.float64)[0], torch.eye(D, dtype=torch.float64)[0])
    f = fourier(E[None])
    assert f["concentration"].item() == pytest.approx(1, abs=1e-9)
    assert f["circularity"].item() < 0.95


def test_random_embeddings_score_low():
    f = fourier(torch.stack([_random(s) for s in range(4)]))
    assert (f["concentration"] < 0.4).all() and (f["circularity"] < 0.75).all() and (f["gini"] < 0.4).all()
    assert (rqi(torch.stack([_random(s) for s in range(4)])) < 0.01).all()


def test_rqi_of_an_exactly_additive_embedding_is_one():
    assert rqi(_linear()[None]).item() == 1.0
    noisy = _linear() + 0.5 * _random() * _linear().std()
    assert rqi(noisy[None]).item() < 0.5


def test_batched_equals_one_member_at_a_time():
    E = torch.stack([_circle(4), _random(), _linear(), _circle(11) + 0.1 * _random(3)])
    whole, r = fourier(E), rqi(E)
    for j in range(len(E)):
        one = fourier(E[j:j + 1])
        for key in ("concentration", "circularity", "share"):
            torch.testing.assert_close(whole[key][j], one[key][0])
        torch.testing.assert_close(r[j], rqi(E[j:j + 1])[0])


@pytest.mark.parametrize("options", [{"p": 11}, {"p": 11, "model": "transformer", "d_model": 16, "d_mlp": 32,
                                                 "heads": 2, "d_head": 8}])
def test_logged_in_a_sweep_as_in_separate_runs(options):
    cfg = TrainConfig(task="modular", task_options=options, weight_decay=[0.0, 1.0], lr=0.01, steps=30,
                      log_every=10)
    task = get_task(cfg.task, cfg.task_options)
    plan = train.make_plan(cfg, task)
    names = {"fourier_concentration", "circularity", "rqi", "key_frequency/1", "restricted_loss", "excluded_loss"}
    assert names <= set(plan.series)

    def logged(group):
        logs = []
        train.run(plan, group, train.fresh_state(plan, group), on_checkpoint=lambda st, lg: logs.append(lg))
        return {k: np.concatenate([lg.arrays()[k] for lg in logs if len(lg)], axis=1) for k in names}

    both = logged(plan.members)
    for j, m in enumerate(plan.members):
        one = logged([m])
        for k in names:
            np.testing.assert_allclose(both[k][j], one[k][0], rtol=1e-5, atol=1e-7, err_msg=k)
    assert (both["fourier_concentration"] > 0).all() and (both["fourier_concentration"] <= 1 + 1e-9).all()


def test_metrics_selection_and_listing(tmp_path, capsys):
    out = tmp_path / "m.h5"
    assert main(["train", "--task", "modular", "--task-opt", "p=7", "--steps", "5", "--metrics", "rqi", "-q",
                 "--out", str(out)]) == 0
    series = set(store.read_trajectories(out)[0]["series"])
    assert "rqi" in series and "circularity" not in series and "group_norm/embed" not in series
    assert {"train_loss", "test_acc", "norm", "constrained_norm"} <= series  # always logged
    ts = metrics.select(get_task("teacher-student"))
    assert {m.name for m in ts} == {"group_norm", "probe_r2", "train_loss", "test_loss", "train_acc", "test_acc",
                                    "norm", "constrained_norm"}
    capsys.readouterr()
    assert main(["metrics"]) == 0
    text = capsys.readouterr().out
    assert "rqi" in text and "modular addition" in text and "circularity" in text


@pytest.mark.parametrize("argv, fragment", [
    (["--task", "modular", "--metrics", "nonsense"], "unknown metric nonsense; known:"),
    (["--task", "teacher-student", "--metrics", "circularity"], "needs a modular task"),
    (["--task", "modular", "--task-opt", "op=*", "--metrics", "rqi"], "needs addition (op +)"),
])
def test_bad_metrics_are_one_line_before_any_step(argv, fragment, tmp_path, capsys):
    assert main(["train", "--steps", "5", *argv, "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.h5").exists()


def test_a_linearly_decodable_representation_has_probe_r2_near_one():
    from landscape.metrics.probe import ridge_r2

    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 400, 20, generator=g)
    w = torch.randn(20, 4, generator=g)
    y = h[0] @ w + 0.5  # member 0's features decode y exactly; the others are unrelated
    r2 = ridge_r2(h[:, :300], y[:300], h[:, 300:], y[300:])
    assert r2[0].item() > 0.999 and (r2[1:] < 0.2).all()
    for j in range(3):  # one solve per member, batched: the same as one at a time, to the stored float32
        one = ridge_r2(h[j:j + 1, :300], y[:300], h[j:j + 1, 300:], y[300:])[0]
        assert r2[j].float() == one.float()
    bad = h.clone()
    bad[1, 5, 2] = float("nan")  # a diverged member: NaN for it, the others untouched
    r2_bad = ridge_r2(bad[:, :300], y[:300], bad[:, 300:], y[300:])
    assert torch.isnan(r2_bad[1]) and torch.equal(r2_bad[[0, 2]], r2[[0, 2]])


def test_the_probe_reads_the_input_of_the_last_linear_layer():
    from landscape.engine.layout import layout_of, flatten
    from landscape.engine.ensemble import Ensemble, functional_forward
    from landscape.tasks.contract import Probe, probe_of

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 2)) for _ in range(2)]
    layout = layout_of(nets[0])
    theta = torch.stack([flatten(n, layout) for n in nets])
    x = torch.randn(10, 3)
    assert probe_of(nets[0], {}) == Probe("4")
    out, h = functional_forward(nets[0], layout, theta, x, Probe("4"))
    for j, net in enumerate(nets):
        torch.testing.assert_close(h[j], net[:4](x))
        torch.testing.assert_close(out[j], net(x))  # the outputs of the same pass
    task = get_task("teacher-student")  # the hand-batched MLP reads the same representation
    mlp = Ensemble(task, nets[0], layout, "mlp")
    assert mlp.engine == "mlp"
    for got, want in zip(mlp.forward(theta, x, Probe("4")), (out, h)):
        torch.testing.assert_close(got, want)
    task = get_task("modular", {"model": "transformer", "p": 7, "d_model": 8, "d_mlp": 8, "heads": 1, "d_head": 8})
    assert probe_of(task.model(), task.structure).layer == "unembed"


def test_probe_layer_task_option(tmp_path, capsys):
    task = get_task("teacher-student", {"probe_layer": "2"})
    assert task.structure["probe_layer"] == "2" and task.options["probe_layer"] == "2"
    out = tmp_path / "p.h5"
    assert main(["train", "--task", "teacher-student", "--task-opt", "probe_layer=2", "--steps", "5", "-q",
                 "--metrics", "probe_r2", "--out", str(out)]) == 0
    assert np.isfinite(store.read_trajectories(out)[0]["probe_r2"]).all()
    capsys.readouterr()
    assert main(["train", "--task", "teacher-student", "--task-opt", "probe_layer=nope", "--steps", "5",
                 "--out", str(tmp_path / "q.h5")]) == 2
    err = capsys.readouterr().err
    assert "probe_layer='nope': the model has no such module" in err and err.count("\n") == 1
    assert not (tmp_path / "q.h5").exists()

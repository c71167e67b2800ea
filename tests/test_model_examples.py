"""The model examples (an LSTM on the loop engine, a CNN on vmap, an MLP on mlp) run as a user runs them and draw their
figures; their real-data loaders read small files written in the real formats."""

import csv
import gzip
import importlib
import sys

import numpy as np
import pytest
from test_examples import ROOT, _run  # one way to run an example script, shared

from landscape.tasks import TaskError


def test_the_lstm_example_falls_back_to_the_loop_engine_and_draws_its_figure(tmp_path, env):
    r = _run("lstm_sentiment", tmp_path, env)
    assert "runs on the loop engine" in r.stderr
    assert "engine loop: 2 trajectories x 300 steps" in r.stdout and "s per member-step" in r.stdout
    assert "weight decay 0: train accuracy" in r.stdout and "weight decay 0.1: train accuracy" in r.stdout


def test_the_cnn_example_runs_on_vmap_and_draws_its_figure(tmp_path, env):
    r = _run("digits_cnn", tmp_path, env)
    assert "scan engine vmap: 5 points x 40 steps" in r.stdout
    assert "train engine vmap: 2 trajectories x 60 steps" in r.stdout
    assert "test accuracy after training: wd 0:" in r.stdout
    assert "runs on the loop engine" not in r.stderr


def test_the_mnist_example_keeps_omnigroks_flatten_mlp_on_the_mlp_engine(tmp_path, env):
    r = _run("mnist_mlp", tmp_path, env)
    assert "scan engine mlp: 8 norms x 150 steps" in r.stdout and "train engine mlp: 2 trajectories" in r.stdout
    assert "init scale 8: norm" in r.stdout


def _example(name):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_the_mnist_loader_reads_idx_files_gzipped_or_not_and_refuses_a_truncated_one(tmp_path):
    mnist = _example("mnist_mlp")
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    images = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 30), ("t10k", 12))}
    labels = {s: rng.integers(0, 10, len(v)) for s, v in images.items()}
    for split in images:
        _idx(raw / f"{split}-images-idx3-ubyte.gz", images[split], gz=True)
        _idx(raw / f"{split}-labels-idx1-ubyte", labels[split])
    task = mnist.make(n_train=20, n_test=12, mnist=str(tmp_path))
    assert task.x_train.shape == (20, 1, 28, 28) and task.x_test.shape == (12, 1, 28, 28)
    assert np.allclose(task.x_train[:, 0].numpy() * 255, images["train"][:20], atol=1e-3)
    assert (task.y_test.argmax(1).numpy() == labels["t10k"]).all() and task.y_train.shape == (20, 10)
    with pytest.raises(TaskError, match="hold 30 images, asked for 40"):
        mnist.make(n_train=40, n_test=12, mnist=str(tmp_path))
    (raw / "t10k-labels-idx1-ubyte").write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes()[:-3])
    with pytest.raises(TaskError, match="truncated or damaged"):
        mnist.make(n_train=20, n_test=12, mnist=str(tmp_path))
    with pytest.raises(TaskError, match="no train-images-idx3-ubyte"):
        mnist.make(mnist=str(tmp_path / "nowhere"))


def test_the_imdb_loader_reads_kaggles_csv(tmp_path):
    lstm = _example("lstm_sentiment")
    path = tmp_path / "IMDB Dataset.csv"
    reviews = [("A wonderful, moving film.<br /><br />Loved it!", "positive"), ("Boring and dull; a waste.", "negative"),
               ("Great cast, great story", "positive"), ("The worst plot, awful acting", "negative")] * 3
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(reviews)
    task = lstm.make(n_train=8, n_test=4, imdb=str(path), vocab=20, seq_len=6)
    assert task.x_train["tokens"].shape == (8, 6) and task.x_test["lengths"].shape == (4,)
    assert set(task.y_train.tolist()) == {0.0, 1.0} and int(task.x_train["tokens"].max()) < 20
    assert (task.x_train["lengths"] <= 6).all() and (task.x_train["lengths"] >= 1).all()
    out, _ = task.model()(task.x_train)
    assert out.shape == (8,)
    with pytest.raises(TaskError, match="has 12 reviews, asked for 10 \\+ 4"):
        lstm.make(n_train=10, n_test=4, imdb=str(path))
    with pytest.raises(TaskError, match="no file"):
        lstm.make(imdb=str(tmp_path / "missing.csv"))

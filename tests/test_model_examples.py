"""The model examples (an LSTM on the loop engine, a CNN on vmap) run as a user runs them and draw their figures."""

from test_examples import _run  # one way to run an example script, shared


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

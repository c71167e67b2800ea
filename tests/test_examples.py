"""The worked examples run as a user runs them, from a fresh process, and draw their figures."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_the_notebook_example_runs_and_draws_its_figure(tmp_path, env):
    figure = tmp_path / "notebook.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_scan.py"), str(figure)], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert figure.stat().st_size > 10_000
    assert "test loss is lowest at norm" in r.stdout and "the run: norm" in r.stdout


def _run(name, tmp_path, env, *args):
    figure = tmp_path / f"{name}.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), str(figure), *args], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert figure.stat().st_size > 10_000
    return r


def test_the_nanda_style_transformer_logs_every_order_parameter_as_computed_directly(tmp_path, env):
    rows = {}
    for line in _run("nanda_transformer", tmp_path, env).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] != "order":
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    assert {"fourier_concentration", "circularity", "rqi", "restricted_loss", "excluded_loss", "probe_r2",
            "key_frequency_1"} <= set(rows)
    for name, (logged, direct) in rows.items():
        assert abs(logged - direct) <= 1e-5 * max(1.0, abs(direct)), name


def test_the_graph_network_example_scans_packed_molecules(tmp_path, env):
    r = _run("graph_network", tmp_path, env)
    assert "engine vmap: 5 norms x 60 steps" in r.stdout and "test_loss" in r.stdout


def test_the_torch_geometric_graph_network_runs_on_the_loop_engine_with_the_note(tmp_path, env):
    pytest.importorskip("torch_geometric")
    r = _run("graph_network", tmp_path, env, "--pyg")
    assert "vmap cannot batch this model" in r.stderr and "runs on the loop engine" in r.stderr
    assert "engine loop: 5 norms x 60 steps" in r.stdout

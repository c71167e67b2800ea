"""The worked examples run as a user runs them, from a fresh process, and draw their figures."""

import importlib.util
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


def test_the_qm9_loader_reads_torch_geometrics_files_and_never_downloads(tmp_path):
    pytest.importorskip("torch_geometric")
    if importlib.util.find_spec("rdkit") is not None:
        pytest.skip("with rdkit, torch-geometric reads QM9's raw SDF files instead")
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import graph_network
    finally:
        sys.path.pop(0)
    from landscape.tasks import TaskError

    with pytest.raises(TaskError, match="never downloads"):
        graph_network.make(size=10, qm9=str(tmp_path / "empty"))
    found, _ = graph_network.molecules(12, seed=3)
    y = torch.arange(12 * 19, dtype=torch.float32).view(12, 1, 19)
    raw = tmp_path / "qm9" / "raw"
    raw.mkdir(parents=True)
    torch.save([{**g, "y": y[i], "z": torch.ones(len(g["x"]), dtype=torch.long)} for i, g in enumerate(found)],
               raw / "qm9_v3.pt")  # torch-geometric's pre-processed QM9 (read without rdkit)
    task = graph_network.make(size=10, qm9=str(tmp_path / "qm9"))
    assert task.n_train == 5 and task.n_test == 5
    assert torch.equal(task.y_train[:, 0], y[:5, 0, 1]) and task.x_train["nodes"].shape[-1] == 11
    with pytest.raises(TaskError, match="holds 12 molecules, asked for 20"):
        graph_network.make(size=20, qm9=str(tmp_path / "qm9"))

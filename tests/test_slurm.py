"""A real single-node Slurm: `landscape submit` runs a 3-task array scan plus the merge job."""

import subprocess
import sys

import numpy as np
import pytest

from cluster import slurm_available, slurm_cluster
from test_shard import _assert_same_content

pytestmark = pytest.mark.slurm

ARGS = ["--task", "tasks_for_tests:tiny", "--norms", "0.3:3:5", "--restarts", "2", "--steps", "60"]


@pytest.fixture
def cluster(tmp_path):
    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    with slurm_cluster(tmp_path / "slurm") as c:
        yield c


def _submit(cluster, env, cwd, what, args, tasks):
    job_env = {**cluster.env, "PYTHONPATH": env["PYTHONPATH"]}
    r = subprocess.run([sys.executable, "-m", "landscape", "submit", what, "--tasks", str(tasks), "--time", "00:10:00",
                        "--", *args], env=job_env, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    array_id, merge_id = words[words.index("array") + 2], words[words.index("merge") + 2]
    states = cluster.wait([array_id, merge_id], timeout=240)
    assert set(states.values()) == {"COMPLETED"}, (states, cluster.describe())
    return array_id, merge_id


def test_array_scan_plus_merge_equals_unsharded_run(cluster, tmp_path, env):
    out = tmp_path / "scan.h5"
    _submit(cluster, env, tmp_path, "scan", [*ARGS, "--out", str(out)], tasks=3)
    assert sorted(p.name for p in tmp_path.glob("scan.shard-*.h5")) == [
        f"scan.shard-000{i}-of-0003.h5" for i in range(3)]
    subprocess.run([sys.executable, "-m", "landscape", "scan", *ARGS, "--quiet", "--out", str(tmp_path / "whole.h5")],
                   env=env, check=True)
    _assert_same_content(out, tmp_path / "whole.h5")


def test_array_sweep_plus_merge_joins_the_scan_file(cluster, tmp_path, env):
    out = tmp_path / "scan.h5"
    subprocess.run([sys.executable, "-m", "landscape", "scan", *ARGS, "--quiet", "--out", str(out)], env=env, check=True)
    sweep = ["--task", "tasks_for_tests:tiny", "--weight-decay", "0.1,1", "--seeds", "0,1", "--steps", "80"]
    _submit(cluster, env, tmp_path, "train", [*sweep, "--out", str(out)], tasks=2)
    from landscape import store

    assert store.read_scan(out) is not None
    trajs = store.read_trajectories(out)
    assert sorted(t["name"] for t in trajs) == ["wd0.1_init1_seed0", "wd0.1_init1_seed1", "wd1_init1_seed0",
                                               "wd1_init1_seed1"]
    assert all(t["status"] == "done" and np.isfinite(t["train_loss"]).all() for t in trajs)


def test_array_phase_grid_plus_merge_classifies_the_grid(cluster, tmp_path, env):
    out = tmp_path / "grid.h5"
    grid = ["--task", "tasks_for_tests:tiny", "--x", "lr=0.003,0.03", "--y", "weight-decay=0,1", "--steps", "60",
            "--train-loss", "0.05", "--test-loss", "0.05"]
    _submit(cluster, env, tmp_path, "phases", [*grid, "--out", str(out)], tasks=2)
    from landscape import store

    merged = store.read_phases(out)
    assert merged is not None and merged["phase"].shape == (2, 2, 1) and (merged["phase"] >= 0).all()
    subprocess.run([sys.executable, "-m", "landscape", "phases", *grid, "--quiet", "--out", str(tmp_path / "w.h5")],
                   env=env, check=True)
    whole = store.read_phases(tmp_path / "w.h5")
    for key in ("phase", "t_train", "t_test", "trajectory"):
        np.testing.assert_array_equal(merged[key], whole[key], err_msg=key)
    assert (tmp_path / "grid-phases.png").exists()

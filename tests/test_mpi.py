"""`mpirun -n 2 landscape scan ... --shard auto`: each rank computes its shard, rank 0 merges."""

import importlib.util
import shutil
import subprocess
import sys

import pytest

from test_shard import _assert_same_content

pytestmark = pytest.mark.mpi

ARGS = ["--task", "tasks_for_tests:tiny", "--norms", "0.3:3:5", "--restarts", "2", "--steps", "60", "--quiet"]


def test_mpi_scan_merges_into_out_and_equals_unsharded(tmp_path, env):
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or mpirun is None:
        pytest.skip("needs mpi4py and mpirun: pip install mpi4py mpich")
    out = tmp_path / "m.h5"
    r = subprocess.run([mpirun, "-n", "2", sys.executable, "-m", "landscape", "scan", *ARGS, "--out", str(out),
                        "--shard", "auto"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "m.shard-0000-of-0002.h5", "m.shard-0001-of-0002.h5"]
    subprocess.run([sys.executable, "-m", "landscape", "scan", *ARGS, "--out", str(tmp_path / "whole.h5")],
                   env=env, check=True)
    _assert_same_content(out, tmp_path / "whole.h5")


def test_mpi_train_with_an_empty_rank_still_merges(tmp_path, env):
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or mpirun is None:
        pytest.skip("needs mpi4py and mpirun: pip install mpi4py mpich")
    out = tmp_path / "t.h5"
    r = subprocess.run([mpirun, "-n", "3", sys.executable, "-m", "landscape", "train", "--task", "tasks_for_tests:tiny",
                        "--weight-decay", "0.1,1", "--steps", "20", "--quiet", "--out", str(out), "--shard", "auto"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from landscape import store

    assert sorted(t["name"] for t in store.read_trajectories(out)) == ["wd0.1_init1_seed0", "wd1_init1_seed0"]

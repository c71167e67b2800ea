"""Sharded scans and sweeps, merging, SIGTERM: everything batch clusters need, without a cluster."""

import hashlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from processes import watch

from landscape import cluster
from landscape import store
from landscape.cli import main

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
SCAN = ["scan", *TINY, "--norms", "0.3:3:5", "--restarts", "2", "--steps", "40", "--history", "20"]
TRAIN = ["train", *TINY, "--weight-decay", "0.1,1", "--init-scale", "1,3", "--seeds", "0,1", "--steps", "60",
         "--batch-size", "8", "--log-points", "12", "--checkpoint-every", "25"]


def _datasets(path):
    out = {}
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def _assert_same_content(a, b, skip=()):
    """Every dataset equal (NaN == NaN), except those whose path starts with one of ``skip``."""
    keep = lambda names: sorted(n for n in names if not any(n.startswith(s) for s in skip))  # noqa: E731
    da, db = _datasets(a), _datasets(b)
    assert keep(da) == keep(db)
    assert keep(da), "nothing compared"
    for name in keep(da):
        assert np.array_equal(da[name], db[name], equal_nan=True), name


def test_parse_and_paths():
    assert cluster.parse_shard("0/1") == (0, 1)
    for bad in ("1/1", "3/2", "x", "1/0", "-1/3", "1/2/3"):
        with pytest.raises(ValueError):
            cluster.parse_shard(bad)
    assert cluster.shard_path("a/scan.h5", 12, 100).name == "scan.shard-0012-of-0100.h5"
    assert cluster.shard_of("scan.shard-0012-of-0100.h5") == ("scan", 12, 100)
    assert cluster.shard_items(list(range(7)), 2, 3) == [2, 5]


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4, "slurm")),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3, "slurm")),
    ({"SLURM_ARRAY_TASK_ID": "25", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3",
      "SLURM_ARRAY_TASK_STEP": "10"}, (2, 3, "slurm")),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, (1, 2, "mpi")),
    ({"PMI_RANK": "0", "PMI_SIZE": "3"}, (0, 3, "mpi")),
])
def test_auto_from_environment(env, expected):
    assert cluster.from_environment(env) == expected


def test_auto_outside_slurm_and_mpi_says_what_it_looked_for(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if the extra were not installed
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID.*OMPI_COMM_WORLD_RANK"):
        cluster.from_environment({})


def test_sharded_scan_merges_to_the_unsharded_run(tmp_path):
    out = tmp_path / "s.h5"
    for i in range(3):
        assert main([*SCAN, "--out", str(out), "--shard", f"{i}/3", "--chunk", "2"]) == 0
        part = store.read_scan(cluster.shard_path(out, i, 3))
        done = np.flatnonzero(part["status"].ravel() != 0)
        assert done.tolist() == list(range(i, 10, 3))  # interleaved: small and large norms alike
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) == 0
    assert main([*SCAN, "--out", str(tmp_path / "whole.h5")]) == 0
    _assert_same_content(out, tmp_path / "whole.h5")
    with h5py.File(out) as f:
        assert "shard" not in f["scan"].attrs
        assert f["scan/train_loss"].dims[0].keys() == ["norm"]
    # idempotent
    before = _datasets(out)
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) == 0
    after = _datasets(out)
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)


def test_sharded_sweep_merges_to_the_unsharded_sweep(tmp_path):
    out = tmp_path / "t.h5"
    for i in range(3):
        assert main([*TRAIN, "--out", str(out), "--shard", f"{i}/3"]) == 0
    assert main(["merge", str(tmp_path / "t.shard-*.h5"), "-o", str(out)]) == 0
    assert main([*TRAIN, "--out", str(tmp_path / "whole.h5")]) == 0
    _assert_same_content(out, tmp_path / "whole.h5")
    assert len(store.read_trajectories(out)) == 8


def test_scan_and_train_shards_merge_into_one_file(tmp_path):
    out = tmp_path / "x.h5"
    for i in range(2):
        assert main([*SCAN, "--out", str(out), "--shard", f"{i}/2"]) == 0
        assert main([*TRAIN, "--out", str(out), "--shard", f"{i}/2"]) == 0
    assert main(["merge", str(tmp_path / "x.shard-*.h5"), "-o", str(out)]) == 0
    assert store.read_scan(out) is not None and len(store.read_trajectories(out)) == 8
    assert main(["plot", str(out), "-o", str(tmp_path / "x.png")]) == 0


def test_merge_refuses_other_configuration_naming_the_shard(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out), "--shard", "0/2"]) == 0
    other = [a if a != "40" else "41" for a in SCAN]
    assert main([*other, "--out", str(out), "--shard", "1/2"]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "shard-0001-of-0002" in err and "steps" in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_points_are_reported_not_zeroed(tmp_path, capsys):
    out = tmp_path / "s.h5"
    for i in (0, 2):  # shard 1 of 3 "failed"
        assert main([*SCAN, "--out", str(out), "--shard", f"{i}/3"]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "3 scan points missing" in err and "alpha=0.3, restart 1" in err
    assert not out.exists()
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out), "--allow-partial"]) == 0
    s = store.read_scan(out)
    missing = s["status"].ravel() == 0
    assert missing.sum() == 3 and np.isnan(s["train_loss"].ravel()[missing]).all()
    with h5py.File(out) as f:
        assert "3 scan points missing" in f.attrs["missing"]


def test_merge_never_overwrites_another_experiment(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out), "--shard", "0/1"]) == 0
    other = tmp_path / "other.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--steps", "5", "--out", str(other)]) == 0
    digest = hashlib.sha256(other.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["merge", str(cluster.shard_path(out, 0, 1)), "-o", str(other)]) == 2
    assert "another experiment" in capsys.readouterr().err
    assert hashlib.sha256(other.read_bytes()).hexdigest() == digest
    assert main(["merge", str(tmp_path / "nothing-*.h5"), "-o", str(out)]) == 2


@pytest.mark.parametrize("spec, fragment", [("3/3", "0 <= I < N"), ("x", "expected I/N"), ("2/0", "0 <= I < N")])
def test_bad_shard_spec(spec, fragment, tmp_path, capsys):
    assert main([*SCAN, "--out", str(tmp_path / "s.h5"), "--shard", spec]) == 2
    assert fragment in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_shard_resume_is_refused_for_other_layout(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out), "--shard", "0/2"]) == 0
    (tmp_path / "s.shard-0000-of-0002.h5").rename(tmp_path / "s.shard-0000-of-0003.h5")
    capsys.readouterr()
    assert main([*SCAN, "--out", str(out), "--shard", "0/3"]) == 2
    assert "shard" in capsys.readouterr().err


def _wait_for(predicate, proc, timeout=120):
    return bool(watch(proc, predicate, bool, timeout))


def test_sigterm_keeps_finished_scan_points_and_resume_completes(tmp_path, env):
    out = tmp_path / "s.h5"
    cmd = [sys.executable, "-m", "landscape", "scan", "--task", "tasks_for_tests:tiny", "--norms", "0.3:3:8",
           "--restarts", "2", "--steps", "400", "--chunk", "2", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)

    def some_done():
        with h5py.File(out, "r") as f:
            return (f["scan/status"][()] != 0).sum() >= 2

    assert _wait_for(some_done, proc), proc.stderr.read() if proc.poll() is not None else "timeout"
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert proc.stderr.read().decode().strip().splitlines()[-1].startswith("landscape: terminated;")
    partial = store.read_scan(out)  # readable: no half-written file
    kept = (partial["status"] != 0).sum()
    assert 2 <= kept < 16
    subprocess.run(cmd, env=env, check=True)
    subprocess.run([*cmd[:-1], str(tmp_path / "clean.h5")], env=env, check=True)
    _assert_same_content(out, tmp_path / "clean.h5")


def test_sigterm_checkpoints_training_and_resume_equals_uninterrupted(tmp_path, env):
    out = tmp_path / "t.h5"
    cmd = [sys.executable, "-m", "landscape", "train", "--task", "tasks_for_tests:tiny", "--weight-decay", "0.1,1",
           "--steps", "20000", "--checkpoint-every", "100000", "--log-points", "30", "--batch-size", "8",
           "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    assert _wait_for(lambda: out.exists() and time.sleep(1.5) is None, proc)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    steps = [t["checkpoint_step"] for t in store.read_trajectories(out)]
    assert all(0 < s < 20000 for s in steps), steps  # a checkpoint was written at the signal, mid-run
    subprocess.run(cmd, env=env, check=True)
    subprocess.run([*cmd[:-1], str(tmp_path / "clean.h5")], env=env, check=True)
    _assert_same_content(out, tmp_path / "clean.h5", skip=("trajectories/wd0.1_init1_seed0/checkpoint_",
                                                         "trajectories/wd1_init1_seed0/checkpoint_"))


def test_submit_dry_run_builds_array_and_dependent_merge(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["submit", "scan", "--tasks", "3", "--throttle", "2", "--time", "01:00:00", "--partition", "short",
                 "--cpus-per-task", "4", "--mem", "4G", "--dry-run", "--", *SCAN[1:], "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "--array=0-2%2" in lines[0] and "--shard auto" in lines[0] and "--partition=short" in lines[0]
    assert "--cpus-per-task=4" in lines[0] and "--mem=4G" in lines[0] and "--time=01:00:00" in lines[0]
    assert "--dependency=afterok:{array_job}" in lines[1] and "merge" in lines[1] and str(out) in lines[1]


@pytest.mark.parametrize("argv, fragment", [
    (["submit", "scan", "--tasks", "2", "--dry-run", "--", "--norms", "1,2"], "--out"),
    (["submit", "scan", "--tasks", "2", "--dry-run", "--", "--out", "x.h5", "--shard", "0/2"], "--shard"),
    (["submit", "scan", "--tasks", "2", "--dry-run", "--", "--out", "x.h5", "--norms", "3:1"], "below START"),
    (["submit", "scan", "--tasks", "2", "--sbatch", "/nonexistent/sbatch", "--", "--out", "x.h5"], "not found"),
])
def test_submit_bad_input(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("env, fragment", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2",
      "SLURM_ARRAY_TASK_STEP": "0"}, "inconsistent"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3",
      "SLURM_ARRAY_TASK_STEP": "2"}, "inconsistent"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, "SLURM_ARRAY_TASK_ID"),
    ({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "outside"),
    ({"PMI_RANK": "0", "PMI_SIZE": "0"}, "invalid"),
    ({"PMI_RANK": "5", "PMI_SIZE": "2"}, "invalid"),
    ({"PMI_RANK": "-1", "PMI_SIZE": "2"}, "invalid"),
])
def test_auto_refuses_inconsistent_environment(env, fragment):
    with pytest.raises(ValueError, match=fragment):
        cluster.from_environment(env)


def test_merge_into_partial_output_keeps_its_finished_points(tmp_path):
    out = tmp_path / "s.h5"
    for i in range(3):
        assert main([*SCAN, "--out", str(out), "--shard", f"{i}/3"]) == 0
    failed = cluster.shard_path(out, 1, 3)
    failed.rename(tmp_path / "aside.h5")
    assert main(["merge", str(tmp_path / "s.shard-*.h5"), "-o", str(out), "--allow-partial"]) == 0
    assert (store.read_scan(out)["status"] != 0).sum() == 7
    # merging a single shard into it adds, never removes
    (tmp_path / "aside.h5").rename(failed)
    assert main(["merge", str(failed), "-o", str(out)]) == 0
    assert (store.read_scan(out)["status"] != 0).sum() == 10
    assert main([*SCAN, "--out", str(tmp_path / "whole.h5")]) == 0
    _assert_same_content(out, tmp_path / "whole.h5")


def test_merge_refuses_empty_inputs_and_missing_directories(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out), "--shard", "0/1"]) == 0
    h5py.File(tmp_path / "empty.h5", "w").close()
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "empty.h5"), "-o", str(tmp_path / "m.h5")]) == 2
    assert "neither a scan nor trajectories" in capsys.readouterr().err
    assert main(["merge", str(cluster.shard_path(out, 0, 1)), "-o", str(tmp_path / "no" / "m.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    same = [str(cluster.shard_path(out, 0, 1)), str(tmp_path / "." / cluster.shard_path(out, 0, 1).name)]
    assert main(["merge", *same, "-o", str(tmp_path / "m.h5")]) == 0
    assert "merged 1 shards" in capsys.readouterr().out


def test_interrupted_checkpoint_write_leaves_the_previous_checkpoint_usable(tmp_path):
    """A kill while a checkpoint is being written must not corrupt the resume (two slots)."""
    from landscape.config.settings import TrainConfig
    from training import train_until

    args = ["train", *TINY, "--weight-decay", "0.1,0.3", "--steps", "300", "--checkpoint-every", "100",
            "--log-every", "20"]
    out = tmp_path / "k.h5"
    cfg = TrainConfig(task="tasks_for_tests:tiny", weight_decay=[0.1, 0.3], steps=300, checkpoint_every=100,
                      log_every=20)
    names = train_until(out, cfg, checkpoints=2)  # checkpoints at 100 and 200, then one at the stop
    # now a third checkpoint write is "killed" halfway: the inactive slot is overwritten, the step never set
    with h5py.File(out, "r+") as f:
        for name in names:
            g = f["trajectories"][name]
            current = g.attrs["checkpoint_step"]
            assert 200 <= current < 300
            stale = [s for s in store.CHECKPOINT_SLOTS if g[s].attrs["step"] != current][0]
            g[stale].attrs["step"] = -1
            g[stale]["theta"][...] = np.nan
    assert main([*args, "--out", str(out)]) == 0
    assert main([*args, "--out", str(tmp_path / "clean.h5")]) == 0
    _assert_same_content(out, tmp_path / "clean.h5", skip=tuple(f"trajectories/{n}/checkpoint_" for n in names))


def test_plot_with_empty_trajectory_list_is_refused(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main([*TRAIN, "--steps", "10", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plot", str(out), "--trajectories", " , "]) == 2
    assert "one or more names" in capsys.readouterr().err


def test_submit_checks_the_task_before_submitting(capsys):
    assert main(["submit", "train", "--tasks", "3", "--dry-run", "--", "--task", "nosuch", "--out", "x.h5"]) == 2
    assert "unknown task" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["scan", "train"])
def test_the_merge_target_is_checked_before_any_shard_computes(tmp_path, capsys, what):
    """submit and a hand-run --shard refuse at once an --out the merge job would refuse after all the compute:
    not an HDF5 file, another task's file, a directory that does not exist."""
    (tmp_path / "text.h5").write_text("not a landscape file\n")
    other = tmp_path / "other.h5"
    assert main(["scan", "--task", "tasks_for_tests:tiny_head", "--norms", "1,2", "--steps", "5", "--quiet",
                 "--out", str(other)]) == 0
    args = [*TINY, "--steps", "5"] + (["--norms", "1,2"] if what == "scan" else [])
    for out, fragment in ((tmp_path / "text.h5", "not a readable HDF5 file"), (other, "holds task"),
                          (tmp_path / "no" / "s.h5", "does not exist")):
        for argv in (["submit", what, "--tasks", "2", "--dry-run", "--", *args, "--out", str(out)],
                     [what, *args, "--shard", "0/2", "--out", str(out)]):
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and fragment in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.h5", "text.h5"]  # no shard file written

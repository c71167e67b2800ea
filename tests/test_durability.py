"""What a second writer, a full disk, an --overwrite, a diverging member or broken task code can and cannot cost."""

import hashlib
import subprocess

import h5py
import numpy as np
import pytest

from landscape.experiments import scan
from landscape import store
from landscape.cli import main

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
SCAN = ["scan", *TINY, "--norms", "0.5:2:4", "--steps", "20", "--chunk", "1"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_writer_is_refused_with_one_line(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out)]) == 0
    before = _sha(out)
    with store.writer_lock(out):  # another process holding the output
        capsys.readouterr()
        assert main([*SCAN, "--steps", "30", "--overwrite", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another landscape process" in err
        assert main(["train", *TINY, "--steps", "5", "--out", str(out)]) == 2
    assert _sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # the lock file goes with its holder


def test_an_empty_hdf5_file_at_out_is_used_as_a_new_file(tmp_path):
    out = tmp_path / "e.h5"
    h5py.File(out, "w").close()
    assert main([*SCAN, "--out", str(out)]) == 0
    assert (store.read_scan(out)["status"] == 1).all()
    assert main([*SCAN, "--out", str(out)]) == 0  # and resumed, not refused


def test_overwrite_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, monkeypatch):
    out = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(out)]) == 0
    before = _sha(out)
    real, calls = scan.run_chunk, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scan, "run_chunk", interrupted)
    assert main([*SCAN, "--steps", "30", "--overwrite", "--out", str(out)]) == 130
    assert _sha(out) == before and store.read_scan(out)["config"]["steps"] == 20  # old results, readable
    monkeypatch.setattr(scan, "run_chunk", real)
    assert main([*SCAN, "--steps", "30", "--overwrite", "--out", str(out)]) == 0  # resumes the new file
    assert store.read_scan(out)["config"]["steps"] == 30
    assert main([*SCAN, "--steps", "30", "--out", str(tmp_path / "clean.h5")]) == 0
    np.testing.assert_array_equal(store.read_scan(out)["train_loss"], store.read_scan(tmp_path / "clean.h5")["train_loss"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "s.h5"]


def test_a_diverging_member_is_marked_and_the_others_go_on(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["train", *TINY, "--weight-decay", "0.1,10000", "--steps", "60", "--checkpoint-every", "20",
                 "--out", str(out)]) == 0
    status = {t["name"]: t["status"] for t in store.read_trajectories(out)}
    assert status == {"wd0.1_init1_seed0": "done", "wd10000_init1_seed0": "diverged"}


@pytest.mark.parametrize("task, fragment", [("raising", "RuntimeError: my loss is broken"),
                                            ("wrong_width", "RuntimeError")])
@pytest.mark.parametrize("command", ["scan", "train"])
def test_errors_in_task_code_are_one_line_and_leave_no_file(tmp_path, capsys, task, fragment, command):
    out = tmp_path / "x.h5"
    argv = [command, "--task", f"tasks_for_tests:{task}", "--steps", "5", "--quiet", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"task 'tasks_for_tests:{task}'" in err and fragment in err
    assert list(tmp_path.iterdir()) == []  # a corrected rerun starts afresh


def test_nan_in_file_data_is_refused_naming_the_key(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[2, 1] = np.nan
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.zeros(10), x_test=x[:4] * 0, y_test=np.zeros(4))
    assert main(["scan", "--task", "file", "--task-opt", f"path={tmp_path / 'd.npz'}", "--quiet",
                 "--out", str(tmp_path / "f.h5")]) == 2
    assert "x_train" in capsys.readouterr().err and not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["scan", "--seed", "-5"], "--seed"),
    (["train", "--seeds=-1"], "--seeds"),
    (["scan", "--task-opt", "width=0"], "width must be at least 1"),
    (["scan", "--constrain", "0.weight,9.*"], "'9.*' matches no parameter"),
])
def test_smaller_findings_are_one_line(tmp_path, capsys, argv, fragment):
    assert main([*argv, "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and not (tmp_path / "x.h5").exists()


def test_a_binary_config_and_a_read_only_directory_are_refused(tmp_path, capsys):
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)))
    assert main(["scan", "--config", str(tmp_path / "bin.toml"), "--out", str(tmp_path / "x.h5")]) == 2
    assert "not a text (TOML) file" in capsys.readouterr().err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # (root writes anywhere)
            assert main([*SCAN, "--out", str(ro / "x.h5")]) == 2
            assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_shard_beyond_the_points_says_so(tmp_path, capsys):
    assert main([*SCAN, "--shard", "5/6", "--out", str(tmp_path / "s.h5")]) == 0
    assert "has no points" in capsys.readouterr().err


def _mount_tmpfs(where, size):
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def test_a_full_disk_fails_with_one_line_and_keeps_the_file(tmp_path, capsys):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        out = disk / "s.h5"
        assert main([*SCAN, "--out", str(out)]) == 0
        before = _sha(out)
        free = __import__("shutil").disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - 8 * 1024))  # leave less than the file needs
        capsys.readouterr()
        assert main(["train", *TINY, "--steps", "30", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no space left" in err, err
        assert _sha(out) == before and main(["info", str(out)]) == 0
        (disk / "filler").unlink()
        assert main(["train", *TINY, "--steps", "30", "--out", str(out)]) == 0  # space freed: it just works
        assert len(store.read_trajectories(out)) == 1 and store.read_scan(out) is not None
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_two_processes_on_one_new_output(tmp_path, env):
    """The second process is refused with one line while the first writes; the first's file is whole."""
    import sys
    import time

    out = tmp_path / "r.h5"
    argv = [sys.executable, "-m", "landscape", "scan", *TINY, "--norms", "0.5:2:6", "--steps", "400", "--chunk", "1",
            "--out", str(out)]
    argv[argv.index("400")] = "100000"  # the first is still running when the second asks for the lock
    first = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    lock = tmp_path / ".r.h5.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert first.poll() is None, first.stderr.read()
        second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second asked"
    finally:
        first.terminate()
        first.wait(timeout=120)
    assert second.returncode == 2 and second.stderr.count("\n") == 1 and "another landscape process" in second.stderr
    store.read_scan(out)  # the first's file is whole (SIGTERM ends a scan between commits)
    assert not lock.exists()


def test_train_overwrite_is_staged_and_never_publishes_a_stale_copy(tmp_path, monkeypatch, capsys):
    from landscape.experiments import train

    out = tmp_path / "t.h5"
    base = ["train", *TINY, "--steps", "40", "--checkpoint-every", "10", "--out", str(out)]
    assert main(base) == 0
    before = _sha(out)
    real, calls = train.run, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", interrupted)
    assert main([*base, "--lr", "0.002", "--overwrite"]) == 130
    assert _sha(out) == before  # old trajectory still there, file untouched
    monkeypatch.setattr(train, "run", real)
    assert main([*base, "--seeds", "1"]) == 0  # the file changes while the staging copy waits
    assert main([*base, "--lr", "0.002", "--overwrite"]) == 0
    names = sorted(t["name"] for t in store.read_trajectories(out))
    assert names == ["wd0_init1_seed0", "wd0_init1_seed1"]  # seed 1, added in between, is kept
    assert store.read_trajectories(out)[0]["lr"] == 0.002
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]
    capsys.readouterr()
    bad = ["train", "--task", "tasks_for_tests:raising", "--steps", "5", "--quiet", "--overwrite", "--out", str(out)]
    err = capsys.readouterr().err if main(bad) == 2 else "exit code not 2"
    assert "my loss is broken" in err and err.count("\n") == 1  # one line, before the file is touched
    assert sorted(t["name"] for t in store.read_trajectories(out)) == names

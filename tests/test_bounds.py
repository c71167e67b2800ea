"""Issue 31: every count has a bound (what the format stores, what float64 counts exactly, what the machine's memory
holds, the CPUs it may use) and every output path is checked, before any work, in one line naming the flag."""

import os

import pytest

import landscape as ls
from landscape.engine import footprint as holds
from landscape.cli import main

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]


def _refused(argv, capsys, *words):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["train", "--steps", "1000000000000000000"], ["--steps", "at most 9007199254740992", "2^53"]),
    (["train", "--steps", "9223372036854775808"], ["--steps", "at most"]),
    (["scan", "--steps", "9007199254740993"], ["--steps", "at most"]),
    (["train", "--seeds", "0,9223372036854775808"], ["--seeds", "int64"]),
    (["scan", "--seed", "99999999999999999999"], ["--seed", "int64"]),
    (["train", "--warmup", "9007199254740993"], ["--warmup", "at most"]),
    (["train", "--log-every", "9007199254740993"], ["--log-every", "at most"]),
    (["train", "--checkpoint-every", "9007199254740993"], ["--checkpoint-every", "at most"]),
    (["scan", "--history", "9007199254740993"], ["--history", "at most"]),
    (["scan", "--batch-size", "99999999999999999999"], ["--batch-size", "stored as int64"]),
    (["train", "--chunk", "9223372036854775808"], ["--chunk", "stored as int64"]),
])
def test_counts_past_what_is_stored_or_counted_exactly_are_refused_when_read(argv, words, capsys, tmp_path):
    _refused([*argv, *TINY, "--out", str(tmp_path / "x.h5")], capsys, *words)
    assert not (tmp_path / "x.h5").exists()


def test_the_api_refuses_the_same_count_with_the_same_message():
    with pytest.raises(ls.BadInput, match=r"steps must be at most 9007199254740992"):
        ls.train("tasks_for_tests:tiny", steps=10 ** 18, quiet=True)


@pytest.mark.parametrize("argv, words", [
    (["train", "--steps", "100000000000", "--log-every", "1"], ["--steps 100000000000 with --log-every 1", "TiB"]),
    (["train", "--steps", "10", "--log-points", "1000000000000"], ["--log-points 1000000000000", "of memory"]),
    (["scan", "--restarts", "100000000000", "--norms", "1", "--steps", "1"],
     ["--restarts 100000000000", "initializations of 41 parameters"]),
    (["scan", "--history", "1", "--steps", "100000000000", "--norms", "1"], ["--history 1", "this machine has"]),
    (["train", "--seeds", ",".join(map(str, range(100000))), "--steps", "100000000", "--log-every", "100"],
     ["100000 trajectories of 41 parameters", "the file, held whole in memory at each commit"]),
])
def test_what_a_run_would_hold_past_the_machines_memory_is_refused_before_any_step(argv, words, capsys, tmp_path):
    _refused([*argv, *TINY, "--out", str(tmp_path / "x.h5")], capsys, *words)
    assert not (tmp_path / "x.h5").exists()


def test_the_memory_bound_is_the_machines_and_passes_what_fits():
    memory = holds.machine_memory()
    assert memory is None or memory > 1 << 26
    holds.check([("small", 1000)], memory=2000)
    with pytest.raises(ls.BadInput, match="needs at least 2.9 KiB of memory; this machine has 2 KiB"):
        holds.check([("small", 1000), ("large", 3000)], memory=2048)


def test_threads_beyond_the_cpus_this_process_may_use_are_refused(capsys, tmp_path):
    cpus = len(os.sched_getaffinity(0))
    _refused(["train", *TINY, "--threads", str(cpus + 1), "--steps", "2", "--out", str(tmp_path / "x.h5")],
             capsys, f"--threads must be at most {cpus}")


def test_output_paths_are_checked_before_any_step(capsys, tmp_path):
    loop = tmp_path / "loop.h5"
    os.symlink(tmp_path / "other.h5", loop)
    os.symlink(loop, tmp_path / "other.h5")
    _refused(["scan", *TINY, "--norms", "1", "--steps", "2", "--out", str(loop)], capsys, "symbolic link loop")
    assert os.path.islink(loop)  # the link is not replaced by a file
    (tmp_path / "dir.h5").mkdir()
    _refused(["train", *TINY, "--steps", "2", "--out", str(tmp_path / "dir.h5")], capsys, "is a directory")
    _refused(["merge", str(loop), "--out", "/proc/x.h5"], capsys, "--out /proc/x.h5", "cannot be written to")
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1", "--steps", "2", "--out", str(out)]) == 0
    _refused(["plot", str(out), "-o", "/proc/x.png"], capsys, "-o /proc/x.png", "cannot be written to")
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    _refused(["plot", str(out), "-o", str(tmp_path / "a.png")], capsys, "-o", "symbolic link loop")

"""A landscape file holding what the format does not define, or of the wrong kind or shape, is refused in one line.

Every command that opens the file (``info``, ``plot``, ``analyze``, ``merge``, and ``scan``/``train`` writing to
it) exits 2 with one line naming the first offending path, prints no traceback and leaves the file's bytes as
they were; every kind of file the tool itself writes passes the same check.
"""

import shutil
import time

import h5py
import numpy as np
import pytest

from landscape import store
from landscape.cli import main
from landscape.store.schema import check_contents

TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
SCAN = ["scan", *TINY, "--norms", "0.5:2:3", "--restarts", "2", "--steps", "3", "--history", "1", "--save-params"]
TRAIN = ["train", *TINY, "--steps", "6", "--weight-decay", "0.1,1"]


def _replace(f, name, data):
    del f[name]
    f[name] = data


DAMAGES = {  # class: (what is done to a good file, what the message must name)
    "extra dataset": (lambda f: f.create_dataset("scan/weird", data=np.arange(3.0)),
                      ["/scan/weird is not part of the format", "float64"]),
    "extra group": (lambda f: f.create_group("mystuff").create_dataset("x", data=[1, 2]),
                    ["/mystuff is not part of the format (a group)"]),
    "vlen array": (lambda f: f.create_dataset("scan/weird", (2,), dtype=h5py.vlen_dtype(np.float32)),
                   ["/scan/weird is not part of the format", "vlen float32"]),
    "strings for numbers": (lambda f: _replace(f, "scan/train_loss", np.array(
        f["scan/train_loss"][()].astype(str), dtype=h5py.string_dtype())), ["/scan/train_loss", "vlen str"]),
    "float status": (lambda f: _replace(f, "scan/status", f["scan/status"][()].astype(np.float64)),
                     ["/scan/status has dtype float64", "int8 status codes"]),
    "wrong shape": (lambda f: _replace(f, "scan/test_loss", f["scan/test_loss"][:2]),
                    ["damaged or incomplete", "/scan/test_loss has shape [2, 2]"]),
    "short series": (lambda f: _replace(f, "trajectories/wd0.1_init1_seed0/norm",
                                        f["trajectories/wd0.1_init1_seed0/norm"][:-1]),
                     ["/trajectories/wd0.1_init1_seed0/norm has shape"]),
    "soft link": (lambda f: f.__setitem__("scan/alias", h5py.SoftLink("/scan/norm")),
                  ["/scan/alias is a soft link"]),
}
SHAPES = ("wrong shape", "short series")  # damaged, not foreign: --overwrite replaces such a file
COMMANDS = {  # (the file, a scratch directory, the good file)
    "info": lambda p, tmp, good: ["info", str(p)],
    "plot": lambda p, tmp, good: ["plot", str(p), "-o", str(tmp / "x.png")],
    "analyze": lambda p, tmp, good: ["analyze", str(p)],
    "merge": lambda p, tmp, good: ["merge", str(p), "-o", str(tmp / "merged.h5")],
    "merge into it": lambda p, tmp, good: ["merge", str(good.parent / "good.shard-*.h5"), "-o", str(p)],
    "scan --out": lambda p, tmp, good: [*SCAN, "--out", str(p)],
    "scan --overwrite": lambda p, tmp, good: [*SCAN, "--out", str(p), "--overwrite"],
    "train --out": lambda p, tmp, good: [*TRAIN, "--out", str(p)],
}
CASES = [(damage, command) for damage in DAMAGES for command in COMMANDS
         if not (damage in SHAPES and command == "scan --overwrite")]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A scan (history, saved parameters) and a sweep in one file, and two training shards of the same task."""
    path = tmp_path_factory.mktemp("files") / "good.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    assert main([*TRAIN, "--out", str(path)]) == 0
    for i in range(2):
        assert main([*TRAIN, "--out", str(path), "--shard", f"{i}/2"]) == 0
    return path


@pytest.mark.parametrize("damage, command", CASES)
def test_a_foreign_or_damaged_file_is_refused_in_one_line(good, tmp_path, capsys, damage, command):
    path = tmp_path / "f.h5"
    shutil.copyfile(good, path)
    change, words = DAMAGES[damage]
    with h5py.File(path, "r+") as f:
        change(f)
    before = path.read_bytes()
    capsys.readouterr()
    assert main(COMMANDS[command](path, tmp_path, good)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and all(w in err for w in words), err
    kind = "damaged or incomplete landscape file" if damage in SHAPES else "not a landscape file as this version"
    assert kind in err, err
    assert path.read_bytes() == before
    assert not (tmp_path / "merged.h5").exists() and not (tmp_path / "x.png").exists()


def test_overwrite_replaces_a_file_damaged_in_its_shapes(good, tmp_path):
    path = tmp_path / "f.h5"
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        DAMAGES["wrong shape"][0](f)
    assert main([*SCAN, "--out", str(path), "--overwrite"]) == 0
    assert main(["info", str(path)]) == 0
    assert store.read_scan(path)["test_loss"].shape == (3, 2)


def test_a_file_on_disk_is_checked_once_while_it_is_unchanged(good, tmp_path, monkeypatch):
    """Readers open a file several times per command: its contents are checked once, until it changes."""
    from landscape.store import format as file_format, schema

    path = tmp_path / "f.h5"
    shutil.copyfile(good, path)
    later = time.time_ns() + 10**10  # the file's times no longer recent: not racy
    monkeypatch.setattr(file_format.time, "time_ns", lambda: later)
    calls = []
    monkeypatch.setattr(schema, "check_contents", lambda *a, **k: (calls.append(a[1]), check_contents(*a, **k)))
    store.read_scan(path), store.read_trajectories(path), store.describe(path)
    assert calls == [path]
    with h5py.File(path, "r+") as f:
        DAMAGES["extra group"][0](f)
    with pytest.raises(store.StoreError, match="/mystuff is not part of the format"):
        store.describe(path)


# ---------------------------------------------------------------- every file the tool writes passes

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One file of each kind landscape writes: scans (branches, a two-norm grid, shards merged), trajectories with
    the default metrics of the modular transformer (families such as group_norm/embed, key_frequency/1), a phase
    diagram
    (sharded and merged), an analyzed file, a norm-fixed run."""
    d = tmp_path_factory.mktemp("written")
    run = lambda *argv: main([*argv, *(["--quiet"] if argv[0] in ("scan", "train", "phases") else [])])  # noqa: E731
    tiny = ["--task", "tasks_for_tests:tiny"]
    short = ["--steps", "3"]
    scan = ["scan", *tiny, *short, "--norms", "0.5:2:3", "--restarts", "2"]
    assert run(*scan, "--history", "1", "--save-params", "--out", str(d / "scan.h5")) == 0
    assert run(*scan, "--branch", "both", "--save-params", "--out", str(d / "scan.h5")) == 0
    assert run("train", *tiny, *short, "--weight-decay", "0.1,1", "--out", str(d / "scan.h5")) == 0
    assert run("analyze", str(d / "scan.h5"), "--train-loss", "1", "--test-loss", "1") == 0
    assert run("scan", *tiny, *short, "--norms", "0.*=0.5,1", "--norms", "2.*=1,2", "--history", "1",
               "--save-params", "--out", str(d / "grid.h5")) == 0
    for i in range(2):
        assert run(*scan, "--shard", f"{i}/2", "--out", str(d / "sharded.h5")) == 0
        assert run(*scan, "--branch", "down", "--shard", f"{i}/2", "--out", str(d / "sharded.h5")) == 0
        assert run("train", *tiny, *short, "--seeds", "0,1", "--shard", f"{i}/2", "--out", str(d / "sharded.h5")) == 0
    assert run("merge", str(d / "sharded.shard-*.h5"), "-o", str(d / "sharded.h5")) == 0
    assert run("train", "--task", "modular", "--task-opt", "p=7", "--task-opt", "model=transformer", *short,
               "--out", str(d / "transformer.h5")) == 0
    assert run("train", *tiny, *short, "--fix-norm", "--out", str(d / "fixed.h5")) == 0
    phases = ["phases", *tiny, *short, "--x", "lr=1e-3,1e-2", "--y", "weight-decay=0,1", "--train-loss", "1",
              "--test-loss", "1"]
    assert run(*phases, "--out", str(d / "phases.h5")) == 0
    return d


def test_every_file_the_tool_writes_passes_the_check(written):
    paths = sorted(written.glob("*.h5"))
    seen = set()
    for path in paths:
        with h5py.File(path, "r") as f:
            check_contents(f, path)
            f.visit(lambda name: seen.add(name.split("/", 2)[-1] if name.startswith("trajectories/") else name))
        store.open_file(path).close()
        assert main(["info", str(path)]) == 0
    # the files hold every part of the format
    for name in ("scan/history/train_loss", "scan/params", "scan/parameter", "scan/constrained", "scan/norm_2",
                 "branches/down/last_params", "branches/up/status", "analysis/trajectories/predicted_step_w_c",
                 "phases/trajectory", "checkpoint_a/theta", "group_norm/embed", "group_norm/attn", "key_frequency/1",
                 "probe_r2", "step"):
        assert name in seen, name

"""A property-based fuzzer (hypothesis) for the readers: damaged, truncated and foreign landscape files.

From finished files of every kind the tool writes (a scan with its history and minimizers, continuation branches,
a sweep with checkpoints, a phase diagram), each example makes a damaged copy: datasets replaced by another dtype
or shape, extra groups and datasets, removed datasets and attributes, mangled root attributes (made in-process
with h5py), truncations and bit flips (read in a child process, where a crash of the HDF5 library would show as a
signal instead of ending the test session), or what a full disk at a random moment of a run left behind. The
property: ``info``, ``plot``, ``analyze`` and ``merge`` each exit 0, or 2 with one line on stderr; never a
traceback, never another code; and a command that refuses a file leaves its bytes as they were.

The budget follows the hypothesis profile (``tests/conftest.py``); ``--hypothesis-profile=long`` runs new seeds
for ``LANDSCAPE_FUZZ_MINUTES``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from landscape.cli import main
from test_fuzz import _budgeted
from test_full_disk import made  # noqa: F401 -- the fixture: files a command reads

HERE = Path(__file__).parent
TINY = ["--task", "tasks_for_tests:tiny", "--quiet"]
KINDS = {
    "scan": [["scan", *TINY, "--norms", "0.5:2:3", "--restarts", "2", "--steps", "10", "--history", "5",
              "--save-params"]],
    "branches": [["scan", *TINY, "--norms", "0.5:2:3", "--steps", "10", "--branch", "both"]],
    "train": [["scan", *TINY, "--norms", "0.5:2:3", "--steps", "10"],
              ["train", *TINY, "--weight-decay", "0.1,1", "--init-scale", "2", "--steps", "30",
               "--checkpoint-every", "10", "--log-every", "5"]],
    "phases": [["phases", *TINY, "--x", "lr=0.003,0.03", "--y", "weight-decay=0,1", "--steps", "20",
                "--log-every", "5", "--train-loss", "0.05", "--test-loss", "0.05"]],
}
DTYPES = [np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_, "S4", h5py.vlen_dtype(np.float32),
          h5py.string_dtype()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind, commands in KINDS.items():
        path = tmp_path_factory.mktemp(kind) / "f.h5"
        for argv in commands:
            assert main([*argv, "--out", str(path)]) == 0
        if kind == "train":
            assert main(["analyze", str(path)]) == 0
        out[kind] = path
    return out


def _objects(path: Path) -> tuple[list[str], list[str]]:
    """The file's dataset paths and group paths (the root included)."""
    datasets, groups = [], ["/"]
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: (datasets if isinstance(v, h5py.Dataset) else groups).append("/" + k))
    return datasets, groups


@st.composite
def structural(draw, files: dict[str, Path]):
    """A recipe for a damage made with h5py: ``(kind, action, path, details)``."""
    kind = draw(st.sampled_from(sorted(files)))
    datasets, groups = _objects(files[kind])
    action = draw(st.sampled_from(["retype", "add", "remove", "attribute"]))
    if action == "retype":
        return kind, action, draw(st.sampled_from(datasets)), draw(st.integers(0, 2 ** 31))
    if action == "add":
        where = draw(st.sampled_from(groups))
        return kind, action, where.rstrip("/") + "/" + draw(st.sampled_from(["x", "extra", "status", "step"])), \
            draw(st.integers(0, 2 ** 31))
    if action == "remove":
        return kind, action, draw(st.sampled_from(datasets + groups[1:])), 0
    return kind, action, draw(st.sampled_from(groups + datasets)), draw(st.integers(0, 2 ** 31))


def _damage(path: Path, recipe) -> None:
    _, action, where, salt = recipe
    rng = np.random.default_rng(salt)
    with h5py.File(path, "r+") as f:
        if action == "remove":
            del f[where]
        elif action in ("retype", "add"):
            shape = f[where].shape if action == "retype" else (3,)
            if action == "retype":
                del f[where]
            elif where in f:
                where = where + "_"
            dtype = DTYPES[rng.integers(len(DTYPES))]
            shape = [shape, shape[1:], (*shape, 2), (0,), ()][rng.integers(5)]
            if isinstance(dtype, np.dtype) and dtype.metadata:  # vlen or string: no fill value from numpy
                ds = f.create_dataset(where, shape=shape or (1,), dtype=dtype)
                if ds.size and h5py.check_string_dtype(dtype):
                    ds[...] = "x"
            else:
                f.create_dataset(where, data=np.asarray(rng.integers(-3, 3, size=shape)).astype(dtype))
        else:
            attrs = f[where].attrs
            names = sorted(attrs)
            if names and rng.random() < 0.7:
                name = names[rng.integers(len(names))]
                value = [b"{not json", -1, np.float64(np.nan), "", 10 ** 6, np.zeros(3)][rng.integers(6)]
                attrs[name] = value
            elif names:
                del attrs[names[rng.integers(len(names))]]
            else:
                attrs["extra"] = "x"


def _read_all(path: Path, figures: Path) -> list[tuple[str, int, str]]:
    """``(command, exit code, stderr)`` of each reader on ``path`` (merge into a new file beside it)."""
    import contextlib
    import io

    out = []
    for argv in (["info", str(path)], ["plot", str(path), "-o", str(figures / "x.png")], ["analyze", str(path)],
                 ["merge", str(path), "--out", str(figures / "merged.h5")]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except BaseException as e:  # noqa: BLE001 -- the property is that nothing escapes
                code, err = f"raised {type(e).__name__}", io.StringIO(f"{type(e).__name__}: {e}")
        out.append((argv[0], code, err.getvalue()))
    return out


def _verdict(results, before: bytes | None = None, after: bytes | None = None) -> None:
    for command, code, err in results:
        assert "Traceback" not in err and code in (0, 2), (command, code, err)
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("landscape"), (command, err)
    if before is not None and any(code == 2 for command, code, _ in results if command == "analyze"):
        assert after == before, "a refused file was changed"


def test_readers_refuse_structurally_damaged_files_in_one_line(finished):
    count = [0]

    @given(structural(finished))
    def prop(recipe):
        count[0] += 1
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "damaged.h5"
            shutil.copyfile(finished[recipe[0]], path)
            _damage(path, recipe)
            before = path.read_bytes()
            _verdict(_read_all(path, Path(d)), before, path.read_bytes())

    _budgeted(prop)
    print(f"fuzzed {count[0]} structurally damaged files")


@st.composite
def byte_damage(draw, files: dict[str, Path]):
    kind = draw(st.sampled_from(sorted(files)))
    size = files[kind].stat().st_size
    if draw(st.booleans()):
        return kind, "truncate", [draw(st.integers(0, size - 1))]
    return kind, "flip", draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1,
                                       max_size=8))


CHILD = """
import json, sys
sys.path.insert(0, {here!r})
from pathlib import Path
from test_fuzz_files import _read_all
print(json.dumps(_read_all(Path(sys.argv[1]), Path(sys.argv[2]))))
"""


def _bytes_prop(files, env, count):
    @settings(max_examples=max(1, settings.default.max_examples // 5))  # each example is a child process
    @given(byte_damage(files))
    def prop(recipe):
        count[0] += 1
        kind, how, where = recipe
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "damaged.h5"
            data = bytearray(files[kind].read_bytes())
            if how == "truncate":
                data = data[:where[0]]
            else:
                for offset, mask in where:
                    data[offset] ^= mask
            path.write_bytes(bytes(data))
            r = subprocess.run([sys.executable, "-c", CHILD.format(here=str(HERE)), str(path), d], env=env,
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, (recipe, r.returncode, r.stderr[-2000:])
            _verdict([tuple(x) for x in json.loads(r.stdout.strip().splitlines()[-1])])
    return prop


def test_readers_refuse_truncated_and_bit_flipped_files_in_one_line(finished, env):
    count = [0]
    _budgeted(_bytes_prop(finished, env, count))
    print(f"fuzzed {count[0]} truncated or bit-flipped files")


def _full_disk_prop(tmp_path, env, made, count):
    import test_full_disk as disk

    probe = tmp_path / "probe"
    modes = [m for m, ok in (("fill", _can_mount(probe)), ("enospc", disk._strace_works())) if ok]
    subprocess.run(["umount", "-l", str(probe)], check=False, capture_output=True)
    if not modes:
        pytest.skip("neither a small tmpfs nor strace is available here")

    @settings(max_examples=max(1, settings.default.max_examples // 30))  # each example: a clean run and trials
    @given(st.sampled_from(sorted(disk.COMMANDS)), st.sampled_from(modes),
           st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)), min_size=1,
                    max_size=2))
    def prop(command, mode, draws):
        count[0] += len(draws)
        with tempfile.TemporaryDirectory(dir=tmp_path) as d:
            d = Path(d)
            run = d / "run"
            if mode == "fill" and not _can_mount(run):
                return
            run.mkdir(exist_ok=True)
            try:
                argv, setup = disk.COMMANDS[command]
                inputs = made(setup) if setup else []
                figures = disk._figures(argv, inputs, d / "figures") if command == "plot" else []
                spec = {"argv": [a.format(out=run / "x.h5", run=run) for a in argv], "out": str(run / "x.h5"),
                        "dir": str(d), "mode": mode, "points": 2, "draws": draws,
                        "watch": [str(run / n) for n in figures],
                        "inputs": [[str(p), str(run / p.name)] for p in inputs]}
                (d / "spec.json").write_text(json.dumps(spec))
                subprocess.run([sys.executable, str(HERE / "fault_server.py"), str(d / "spec.json"),
                                str(d / "result.json")], env=env, check=True, timeout=900)
            finally:
                if mode == "fill":
                    subprocess.run(["umount", "-l", str(run)], check=False)
            result = json.loads((d / "result.json").read_text())
            for t in result["trials"]:
                problems = disk._verdict(t, result["clean_files"], d / "clean", {p.name: p for p in inputs})
                assert not problems, problems
                left = Path(t["dir"]) / "after" / "x.h5"
                if left.exists():  # what the full disk left, read by every reader
                    _verdict(_read_all(left, Path(t["dir"])))
    return prop


def _can_mount(where: Path) -> bool:
    import test_full_disk as disk

    return shutil.which("mount") is not None and disk._tmpfs(where)


def test_a_full_disk_at_random_points_and_what_it_leaves(tmp_path, env, made):
    count = [0]
    _budgeted(_full_disk_prop(tmp_path, env, made, count))
    print(f"fuzzed {count[0]} full-disk points")

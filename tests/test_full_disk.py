"""A full disk never costs a finished result: every command, filled up at many points of its commits.

Two ways of filling the disk, each run by ``fault_server.py`` (one import of torch, a forked child per run):

* ``fill``: a real small file system. The output's directory is a tmpfs (mounted here, as root); before each
  trial a filler file leaves only ``budget`` bytes free, from none to 2.2 times what the clean run used, so the
  disk fills at a different write of the run each time. Skipped where ``mount -t tmpfs`` is not permitted.
* ``enospc``: every ``write``, ``pwrite64``, ``fsync``, ``ftruncate`` and ``rename`` call on the output's files
  (the file, its temporaries, lock and staging files, the figures) fails once with ENOSPC, injected by strace
  at the real system call (``-e inject=SYSCALL:error=ENOSPC:when=N``). Skipped where strace cannot trace.

After each trial: the process exited 0, or 2 with one line on stderr that says ``no space left on the device``
(no traceback, no crash); what it left holds every finished result as the undisturbed run has it (scan points
marked done, trajectories' logged rows, whole groups, an input file unchanged); and a rerun with space ends
with files equal to the undisturbed run's. ``LANDSCAPE_FILL_POINTS`` sets the budgets per command (default 8).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from test_faults import _datasets, _strace_works

from landscape.cli import main

HERE = Path(__file__).parent
POINTS = int(os.environ.get("LANDSCAPE_FILL_POINTS", "8"))
TINY = ["--task", "tasks_for_tests:tiny"]
SCAN = ["scan", *TINY, "--norms", "0.5:2:8", "--restarts", "2", "--steps", "30", "--chunk", "2", "--history", "10",
        "--save-params", "--quiet"]
BRANCHES = ["scan", *TINY, "--norms", "0.5:2:4", "--restarts", "2", "--steps", "20", "--branch", "both",
            "--history", "10", "--save-params", "--quiet"]
PLANE = ["scan", *TINY, "--norms", "0.*=0.5:2:3", "--norms", "*=0.3:3:3", "--restarts", "1", "--steps", "20",
         "--chunk", "3", "--save-params", "--quiet"]
TRAIN = ["train", *TINY, "--weight-decay", "0.1,1", "--seeds", "0,1", "--init-scale", "2", "--steps", "60",
         "--checkpoint-every", "20", "--log-every", "10", "--quiet"]
TRAIN_ONE = ["train", *TINY, "--weight-decay", "1", "--init-scale", "2", "--steps", "60", "--log-every", "10",
             "--quiet"]
PHASES = ["phases", *TINY, "--x", "lr=0.003,0.03", "--y", "weight-decay=0,1", "--steps", "40",
          "--checkpoint-every", "20", "--log-every", "10", "--train-loss", "0.05", "--test-loss", "0.05", "--quiet"]
# (argv with {out} for the output and {run} for its directory, inputs made by setup, figures it writes)
COMMANDS = {
    "scan": (SCAN + ["--out", "{out}"], None),
    "branches": (BRANCHES + ["--out", "{out}"], None),
    "two-norm": (PLANE + ["--out", "{out}"], None),
    "train": (TRAIN + ["--out", "{out}"], None),
    "phases": (PHASES + ["--out", "{out}"], None),
    "overwrite": ([*SCAN[:4], "0.5:2:4", *SCAN[5:], "--overwrite", "--out", "{out}"], "file"),  # another scan
    "merge": (["merge", "{run}/s.shard-*.h5", "-o", "{out}"], "shards"),
    "analyze": (["analyze", "{out}"], "file"),
    "plot": (["plot", "{out}", "-o", "{run}/x.png"], "one trajectory"),  # four figures
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The files a command reads, made once per kind: shard files of a scan, or a file with a scan and
    trajectories (``{kind: paths}``)."""
    cache = {}

    def make(kind) -> list[Path]:
        if kind not in cache:
            d = tmp_path_factory.mktemp(kind.replace(" ", "-"))
            if kind == "shards":
                for i in range(3):
                    assert main([*SCAN, "--out", str(d / "s.h5"), "--shard", f"{i}/3"]) == 0
                cache[kind] = sorted(d.glob("s.shard-*.h5"))
            else:
                assert main([*SCAN, "--out", str(d / "x.h5")]) == 0
                assert main([*(TRAIN if kind == "file" else TRAIN_ONE), "--out", str(d / "x.h5")]) == 0
                cache[kind] = [d / "x.h5"]
        return cache[kind]

    return make


def _figures(argv, inputs, d: Path) -> list[str]:
    """The names of the figures ``landscape plot`` writes for the input (found by one run)."""
    d.mkdir(exist_ok=True)
    for p in inputs:
        shutil.copyfile(p, d / p.name)
    assert main([a.format(out=d / "x.h5", run=d) for a in argv]) == 0
    return sorted(p.name for p in d.glob("*.png"))


def _done_points(g) -> np.ndarray:
    return g["status"][()].astype(np.int8) == 1


def _intact(after: Path, clean: Path, before: Path | None) -> list[str]:
    """What a faulted run left against the clean run: every finished result there must equal the clean one."""
    if before is not None and after.read_bytes() == before.read_bytes():
        return []  # an input file, unchanged
    bad = []
    with h5py.File(after, "r") as a, h5py.File(clean, "r") as c:
        for name in ("scan", "branches/down", "branches/up"):
            if name not in a:
                continue
            done = _done_points(a[name])
            if not (_done_points(c[name])[done]).all():
                bad.append(f"{name}: a point done here is not done in the clean run")
            for key, ds in a[name].items():
                if isinstance(ds, h5py.Dataset) and ds.shape[:done.ndim] == done.shape and key != "status":
                    if not np.array_equal(ds[()][done], c[name][key][()][done], equal_nan=True):
                        bad.append(f"{name}/{key} differs at finished points")
            for key in ("history/train_loss", "history/test_loss"):
                if key in a[name] and not np.array_equal(a[name][key][()][done], c[name][key][()][done]):
                    bad.append(f"{name}/{key} differs at finished points")
        for name, g in a.get("trajectories", {}).items():
            n = g["step"].shape[0]
            for key, ds in g.items():
                if isinstance(ds, h5py.Dataset) and ds.shape == (n,):
                    if not np.array_equal(ds[()], c["trajectories"][name][key][()][:n], equal_nan=True):
                        bad.append(f"trajectories/{name}/{key}: the logged rows differ")
        for name in ("phases", "analysis"):
            if name in a:
                got, want = _datasets_of(a, name), _datasets_of(c, name)
                if got != want:
                    bad.append(f"/{name} differs from the clean run's")
    return bad


def _datasets_of(f, group) -> dict:
    out = {}
    f[group].visititems(lambda k, v: out.__setitem__(k, np.asarray(v[()]).tobytes())
                        if isinstance(v, h5py.Dataset) and v.dtype.kind != "O" else None)
    return out


def _verdict(t: dict, names: list[str], clean: Path, inputs: dict[str, Path]) -> list[str]:
    """Everything wrong with one trial (empty: it ended clean)."""
    where, why = f"{t['syscall']} {t['n']}", []
    lines = t["stderr"].strip().splitlines()
    if t["code"] not in (0, 2):
        why.append(f"exit {t['code']}")
    if t["code"] == 2 and (len(lines) != 1 or "no space left on the device" not in lines[0]):
        why.append(f"stderr {t['stderr'][:300]!r}")
    if "Traceback" in t["stderr"] or "Exception ignored" in t["stderr"]:
        why.append("a traceback")
    for name in t["after"]:
        if name.endswith(".h5"):
            try:
                why += _intact(Path(t["dir"]) / "after" / name, clean / name, inputs.get(name))
            except OSError as e:
                why.append(f"{name} does not open: {e}")
    if t["rerun"] != 0:
        why.append(f"the rerun exited {t['rerun']}: {t['rerun_stderr'][:300]!r}")
    else:
        for name in names:
            got = Path(t["dir"]) / "rerun" / name
            if not got.exists():
                why.append(f"the rerun left no {name}")
            elif name.endswith(".h5") and _datasets(got) != _datasets(clean / name):
                why.append(f"the rerun's {name} differs from the undisturbed run's")
            elif name.endswith(".png") and got.read_bytes() != (clean / name).read_bytes():
                why.append(f"the rerun's {name} differs from the undisturbed run's")
    if t["leftovers"]:
        why.append(f"left {t['leftovers']}")
    return [f"{where}: {w}" for w in why]


def _trials(tmp_path, command, mode, env, run: Path, made) -> tuple[int, int, list[str]]:
    argv, setup = COMMANDS[command]
    inputs = made(setup) if setup else []
    figures = _figures(argv, inputs, tmp_path / "figures") if command == "plot" else []
    if mode == "enospc":  # traced, a plot run takes seconds (its many reads): the first and the last figure
        figures = figures[:1] + figures[-1:]
    out = run / "x.h5"
    spec = {"argv": [a.format(out=out, run=run) for a in argv], "out": str(out), "dir": str(tmp_path),
            "mode": mode, "points": POINTS, "watch": [str(run / n) for n in figures],
            "inputs": [[str(p), str(run / p.name)] for p in inputs]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    subprocess.run([sys.executable, str(HERE / "fault_server.py"), str(tmp_path / "spec.json"),
                    str(tmp_path / "result.json")], env=env, check=True, timeout=1800)
    result = json.loads((tmp_path / "result.json").read_text())
    names = result["clean_files"]
    assert "x.h5" in names and all(f in names for f in figures), names
    problems = [p for t in result["trials"]
                for p in _verdict(t, names, tmp_path / "clean", {p.name: p for p in inputs})]
    failed = {p.split(":")[0] for p in problems}
    full = sum(t["code"] == 2 for t in result["trials"])
    print(f"{command} ({mode}): {len(result['trials'])} {'fill points' if mode == 'fill' else 'faulted calls'}, {len(result['trials']) - len(failed)} ended "
          f"clean, {full} of them stopped by the full disk")
    return len(result["trials"]), full, problems


def _tmpfs(where: Path) -> bool:
    where.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    run = tmp_path / "run"
    if shutil.which("mount") is None or not _tmpfs(run):
        pytest.skip("mount -t tmpfs is not permitted here (not root, or no CAP_SYS_ADMIN): the ENOSPC injection "
                    "test covers the same writes")
    yield run
    subprocess.run(["umount", "-l", str(run)], check=False)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_disk_that_fills_up_costs_no_finished_result(tmp_path, env, small_disk, command, made):
    tried, full, problems = _trials(tmp_path, command, "fill", env, small_disk, made)
    assert tried >= min(POINTS, 2) and full >= 1, (tried, full)  # the disk did fill
    assert not problems, "\n".join(problems[:20])


@pytest.mark.skipif(not _strace_works(), reason="strace is missing or ptrace is not permitted here")
@pytest.mark.parametrize("command", list(COMMANDS))
def test_enospc_at_every_write_costs_no_finished_result(tmp_path, env, command, made):
    run = tmp_path / "run"
    run.mkdir()
    tried, full, problems = _trials(tmp_path, command, "enospc", env, run, made)
    assert tried >= 3 and full >= 1, (tried, full)
    assert not problems, "\n".join(problems[:20])

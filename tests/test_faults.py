"""Crash safety, tested by faults at real system calls: a kill at any write, rename, fsync or copy of a run loses
nothing finished and corrupts nothing; the rerun's file equals an uninterrupted run's, bit for bit.

The kills come from strace (``-e inject=SYSCALL:signal=KILL:when=N``): the kernel kills the process at that call,
so no Python cleanup runs. ``LANDSCAPE_FAULT_SAMPLES`` sets how many of the ``write`` and ``pwrite64`` calls are
tried (default 40; a number above the count tries every call); every ``fsync`` and ``rename`` call is always tried.
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

HERE = Path(__file__).parent


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    r = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"], capture_output=True)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(not _strace_works(), reason="strace is missing or ptrace is not permitted here")

SAMPLES = int(os.environ.get("LANDSCAPE_FAULT_SAMPLES", "40"))
SCAN = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:4", "--restarts", "2", "--steps", "30",
        "--chunk", "2", "--history", "10", "--save-params", "--curvature", "2", "--quiet"]
BRANCHES = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:4", "--restarts", "2", "--steps", "30",
            "--branch", "both", "--history", "10", "--save-params", "--quiet"]
TRAIN = ["train", "--task", "tasks_for_tests:tiny", "--weight-decay", "0.1,1", "--init-scale", "2", "--steps", "60",
         "--checkpoint-every", "20", "--log-every", "10", "--quiet"]
PHASES = ["phases", "--task", "tasks_for_tests:tiny", "--x", "lr=0.003,0.03", "--y", "weight-decay=0,1", "--steps", "40",
          "--checkpoint-every", "20", "--log-every", "10", "--train-loss", "0.05", "--test-loss", "0.05", "--quiet"]


SKIP_ATTRS = {"created", "DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"}


def _attrs(obj) -> dict:
    return {k: np.asarray(v).tobytes() if isinstance(v, np.ndarray) else v
            for k, v in obj.attrs.items() if k not in SKIP_ATTRS}


def _datasets(path) -> dict[str, bytes]:
    """Every dataset's bytes and every attribute (statuses, checkpoint steps, configs) but creation times."""
    out = {"/": _attrs(h5py.File(path, "r"))}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                # variable-length strings by value: an object array's bytes are pointers
                data = repr(obj.asstr()[()].tolist()) if obj.dtype.kind == "O" else np.asarray(obj[()]).tobytes()
                out[name] = (obj.dtype.str, obj.shape, data, _attrs(obj))
            else:
                out[name] = _attrs(obj)
        f.visititems(visit)
    return out


def _serve(tmp_path, argv, env, mode, **spec) -> tuple[dict, Path]:
    """Run ``fault_server.py`` on ``landscape ARGV --out RUN/x.h5``; its result and the output's path."""
    run = spec.pop("run", tmp_path / "run")
    run.mkdir(exist_ok=True)
    out = run / "x.h5"
    spec = {"argv": [*argv, "--out", str(out)], "out": str(out), "dir": str(tmp_path), "mode": mode, **spec}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    subprocess.run([sys.executable, str(HERE / "fault_server.py"), str(tmp_path / "spec.json"),
                    str(tmp_path / "result.json")], env=env, check=True, timeout=1800)
    return json.loads((tmp_path / "result.json").read_text()), out


def _faults(tmp_path, argv, env):
    result, out = _serve(tmp_path, argv, env, "kill", samples=SAMPLES)
    clean = _datasets(tmp_path / "clean" / out.name)
    exact = 0
    for t in result["trials"]:
        where = f"a kill at {t['syscall']} call {t['n']}"
        assert t["killed"], f"the kill at {t['syscall']} call {t['n']} did not land"
        if out.name in t["after"]:  # what the kill left must open as a landscape file
            with h5py.File(Path(t["dir"]) / "after" / out.name, "r"):
                pass
        assert t["rerun"] == 0, f"rerun after {where} exited {t['rerun']}: {t['rerun_stderr']}"
        got = _datasets(Path(t["dir"]) / "rerun" / out.name)
        assert got.keys() == clean.keys(), (t, sorted(set(got) ^ set(clean)))
        differ = [k for k in clean if got[k] != clean[k]]
        assert not differ, f"after {where}: {differ} differ from the clean run"
        exact += 1
        assert not t["leftovers"], t["leftovers"]  # no lock or temporary file survives the rerun
    counts = result["counts"]
    print(f"{argv[0]}: {counts}; {len(result['trials'])} kills tried, {exact} bit-exact after the rerun")
    assert counts["rename"] >= 2 and counts["fsync"] >= 2 and len(result["trials"]) >= min(SAMPLES, counts["write"])
    return result


def test_a_kill_at_any_write_of_a_scan_loses_nothing(tmp_path, env):
    _faults(tmp_path, SCAN, env)


def test_a_kill_at_any_write_of_training_loses_nothing(tmp_path, env):
    _faults(tmp_path, TRAIN, env)


def test_a_kill_at_any_write_of_continuation_branches_loses_nothing(tmp_path, env):
    _faults(tmp_path, BRANCHES, env)


def test_a_kill_at_any_write_of_a_phase_grid_loses_nothing(tmp_path, env):
    _faults(tmp_path, PHASES, env)
    with h5py.File(tmp_path / "clean" / "x.h5", "r") as f:
        assert f["phases/phase"].shape == (2, 2, 1)  # the clean run, and so every rerun, holds the diagram

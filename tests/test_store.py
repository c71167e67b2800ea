import hashlib
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from processes import watch

from landscape.engine import worker as loop
from landscape.experiments import scan
from landscape import store
from landscape.config.settings import ScanConfig
from landscape.tasks import get_task


def _run(cfg, path, overwrite=False):
    plan = scan.make_plan(cfg, get_task(cfg.task, cfg.task_options))
    todo = store.prepare_scan(path, cfg, plan, overwrite=overwrite)
    for c in loop.chunks(todo, 2):
        store.write_chunk(path, scan.run_chunk(plan, c), cfg.restarts)
    return plan, todo


def test_round_trip_is_self_describing(tmp_path):
    cfg = ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:3", steps=10, restarts=2, history=5, save_params=True)
    path = tmp_path / "s.h5"
    plan, todo = _run(cfg, path)
    assert len(todo) == 6
    s = store.read_scan(path)
    # every value sits at its own (norm, restart): compare with a direct computation, point by point
    direct = scan.run_chunk(plan, np.arange(6))
    for i in range(6):
        k, r = divmod(i, 2)
        assert s["train_loss"][k, r] == pytest.approx(direct.train_loss[i], rel=1e-6)
        assert s["test_loss"][k, r] == pytest.approx(direct.test_loss[i], rel=1e-6)
        np.testing.assert_allclose(s["history"]["train_loss"][k, r], direct.history[0][i], rtol=1e-6)
        with h5py.File(path) as f:
            np.testing.assert_allclose(f["scan/params"][k, r], direct.params[i], rtol=1e-6)
    assert s["train_loss"].shape == (3, 2) and (s["status"] == 1).all()
    np.testing.assert_allclose(s["norm"], s["alpha"] * s["w0"])
    assert s["history"]["step"].tolist() == [0, 5, 10]
    with h5py.File(path) as f:
        assert f.attrs["format"] == "landscape" and f.attrs["format_version"] == 2
        assert "task_options" in f.attrs and "torch_version" in f.attrs
        g = f["scan"]
        assert g["norm"].is_scale and not g["alpha"].is_scale  # format 2: alpha is a coordinate along norm
        assert g["alpha"].dims[0]["norm"].name == g["norm"].name and g["train_loss"].attrs["coordinates"] == "alpha"
        np.testing.assert_array_equal(g["train_loss"].dims[0]["norm"][()], s["norm"])
        np.testing.assert_array_equal(g["train_loss"].dims[1]["restart"][()], [0, 1])
        assert "description" in g["test_loss"].attrs
        assert h5py.check_enum_dtype(g["status"].dtype) == store.STATUS_ENUM
        params = g["params"][()]
        mask = g["constrained"][()].astype(bool)
        norms = np.linalg.norm(params[..., mask], axis=-1)
        np.testing.assert_allclose(norms, np.repeat(s["norm"][:, None], 2, 1), rtol=1e-5)


def test_resume_computes_only_missing(tmp_path):
    cfg = ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:4", steps=10)
    path = tmp_path / "s.h5"
    plan = scan.make_plan(cfg, get_task(cfg.task))
    todo = store.prepare_scan(path, cfg, plan)
    store.write_chunk(path, scan.run_chunk(plan, todo[:2]), 1)
    assert store.prepare_scan(path, cfg, plan).tolist() == [2, 3]
    # the grid written another way is the same experiment
    cfg2 = ScanConfig(task="tasks_for_tests:tiny", norms="0.5,1,1.5,2", steps=10)
    assert store.prepare_scan(path, cfg2, scan.make_plan(cfg2, get_task(cfg.task))).tolist() == [2, 3]


def test_other_configuration_is_refused_and_file_kept(tmp_path):
    cfg = ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:3", steps=10)
    path = tmp_path / "s.h5"
    _run(cfg, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    other = ScanConfig(task="tasks_for_tests:tiny", norms="0.5:2:3", steps=11)
    with pytest.raises(store.StoreError, match="steps"):
        store.prepare_scan(path, other, scan.make_plan(other, get_task(other.task)))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    todo = store.prepare_scan(path, other, scan.make_plan(other, get_task(other.task)), overwrite=True)
    assert len(todo) == 3


def _scan_cmd(path, *extra):
    return [sys.executable, "-m", "landscape", "scan", "--task", "tasks_for_tests:tiny", "--norms", "0.3:3:8:log",
            "--restarts", "2", "--steps", "400", "--chunk", "2", "--history", "200", "--quiet",
            "--out", str(path), *extra]


def test_resume_after_real_kill_equals_uninterrupted_run(tmp_path, env):
    killed, clean = tmp_path / "killed.h5", tmp_path / "clean.h5"
    proc = subprocess.Popen(_scan_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finished():
        with h5py.File(killed, "r") as f:
            return int((f["scan/status"][()] != 0).sum())

    done = watch(proc, finished, lambda n: n >= 2) or 0
    assert proc.poll() is None, f"the scan ended before it was killed: {proc.stderr.read()!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= done < 16, f"kill came too late or never (done={done}): {proc.stderr.read()!r}"
    partial = store.read_scan(killed)
    assert 0 < (partial["status"] != 0).sum() < 16
    subprocess.run(_scan_cmd(killed), env=env, check=True, capture_output=True)
    subprocess.run(_scan_cmd(clean), env=env, check=True, capture_output=True)
    a, b = store.read_scan(killed), store.read_scan(clean)
    assert (a["status"] == 1).all()
    for key in ("train_loss", "test_loss", "grad_norm", "steps"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(a["history"]["train_loss"], b["history"]["train_loss"], rtol=1e-6)


def test_every_dataset_explains_itself(tmp_path):
    """A file of a scan (with history), a sweep and its analysis: every dataset carries a description, or is a
    dimension scale with a long_name, except the documented exceptions; every step axis says its units."""
    from landscape.cli import main

    out = tmp_path / "f.h5"
    tiny = ["--task", "tasks_for_tests:tiny", "--quiet", "--out", str(out)]
    assert main(["scan", *tiny, "--norms", "0.5:2:3", "--steps", "20", "--history", "10"]) == 0
    assert main(["train", *tiny, "--steps", "20", "--weight-decay", "0.1,1"]) == 0
    assert main(["analyze", str(out), "--train-loss", "1", "--test-loss", "1"]) == 0
    silent, steps = [], []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or name == "scan/constrained" or "/checkpoint_" in name:
            return  # documented in docs/format.md as described by their group
        if "description" not in obj.attrs and "long_name" not in obj.attrs:
            silent.append(name)
        if name.split("/")[-1] == "step" or name.endswith("_step") or "predicted_step" in name:
            steps.append((name, obj.attrs.get("units")))

    with h5py.File(out, "r") as f:
        f.visititems(visit)
    assert silent == []
    assert steps and all(units == "step" for _, units in steps), steps


def test_a_version_1_file_reads_and_resumes_as_before(tmp_path, capsys):
    """Format 1 made alpha a second dimension scale of the norm axis; such a file still reads and resumes."""
    from landscape.cli import main

    argv = ["scan", "--task", "tasks_for_tests:tiny", "--norms", "0.5:2:4", "--steps", "10", "--quiet"]
    out = tmp_path / "v1.h5"
    assert main([*argv, "--out", str(out), "--chunk", "2"]) == 0
    with h5py.File(out, "r+") as f:
        g = f["scan"]
        g["status"][2:] = 0  # the last two points pending, as a killed version-1 run left them
        g["alpha"].dims[0].detach_scale(g["norm"])
        g["alpha"].make_scale("alpha")
        for name in ("train_loss", "test_loss", "status"):
            g[name].dims[0].attach_scale(g["alpha"])
            del g[name].attrs["coordinates"]
        f.attrs["format_version"] = 1
    assert main([*argv, "--out", str(out), "--chunk", "2"]) == 0
    s = store.read_scan(out)
    assert (s["status"] == 1).all() and np.isfinite(s["train_loss"]).all()
    assert main(["info", str(out)]) == 0

import hashlib
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from landscape.cli import main
from landscape.store import read_scan, read_trajectories

TINY = ["--task", "tasks_for_tests:tiny", "--steps", "20", "--quiet"]


def test_end_to_end_scan_plot_info(tmp_path, capsys):
    out = tmp_path / "scan.h5"
    assert main(["scan", *TINY, "--norms", "0.5:2:3", "--restarts", "2", "--out", str(out)]) == 0
    s = read_scan(out)
    assert (s["status"] == 1).all()
    for suffix in (".png", ".pdf", ".svg"):
        fig = tmp_path / f"fig{suffix}"
        assert main(["plot", str(out), "-o", str(fig)]) == 0
        assert fig.stat().st_size > 1000
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 norms x 2 restarts" in text and "done 6" in text
    assert main(["info", "--json", str(out)]) == 0


def test_console_script_and_summary_table(tmp_path, env):
    out = tmp_path / "scan.h5"
    r = subprocess.run([sys.executable, "-m", "landscape", "scan", "--task", "tasks_for_tests:tiny", "--steps", "10",
                        "--norms", "1,2", "--out", str(out)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "alpha" in r.stdout and "test loss" in r.stdout and r.stdout.count("done") == 2


def test_classification_scan_records_accuracy(tmp_path):
    out = tmp_path / "m.h5"
    assert main(["scan", "--task", "modular", "--task-opt", "p=7", "--steps", "30", "--norms", "1,2",
                 "--quiet", "--out", str(out)]) == 0
    s = read_scan(out)
    assert s["classification"] and np.isfinite(s["test_acc"]).all()
    assert main(["plot", str(out), "-o", str(tmp_path / "m.png")]) == 0


def test_config_file_values_are_overridden_by_flags(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('task = "tasks_for_tests:tiny"\nnorms = "1,2,3"\nsteps = 7\n[task_options]\nn = 16\n')
    out = tmp_path / "c.h5"
    assert main(["scan", "--config", str(cfg), "--steps", "5", "--quiet", "--out", str(out)]) == 0
    s = read_scan(out)
    assert s["config"]["steps"] == 5 and len(s["alpha"]) == 3 and s["config"]["task_options"]["n"] == 16


DATA = __import__("pathlib").Path(__file__).parent.parent / "data"


@pytest.mark.parametrize("preset", sorted(p.name for p in DATA.glob("*.toml")))
def test_shipped_presets_build_a_plan(preset):
    """Every preset parses, validates and resolves to a runnable plan (no computation)."""
    from landscape.config import settings as config
    from landscape.experiments import scan, train
    from landscape.config.phases import PhasesConfig

    text = (DATA / preset).read_text()
    is_phases = "\nx = " in text
    import tomllib

    is_train = is_phases or not set(tomllib.loads(text)) <= set(config.field_names(config.ScanConfig))
    kind = PhasesConfig if is_phases else config.TrainConfig if is_train else config.ScanConfig
    cfg = config.resolve(kind, DATA / preset)
    if is_phases:
        cfg = cfg.train_config()
    from landscape.tasks import get_task

    task = get_task(cfg.task, cfg.task_options)
    plan = (train if is_train else scan).make_plan(cfg, task)
    assert (len(plan.members) if is_train else plan.n_points) >= 1


def test_file_task_npz_and_h5(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(20, 4)), "y_train": rng.integers(0, 3, 20),
              "x_test": rng.normal(size=(10, 4)), "y_test": rng.integers(0, 3, 10)}
    np.savez(tmp_path / "d.npz", **arrays)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for k, v in arrays.items():
            f[k] = v.astype(np.float32) if k.startswith("y") else v
    out = tmp_path / "f.h5"
    assert main(["scan", "--task", "file", "--task-opt", f"path={tmp_path / 'd.npz'}", "--task-opt", "widths=8",
                 "--steps", "5", "--norms", "1", "--quiet", "--out", str(out)]) == 0
    assert read_scan(out)["classification"]
    out2 = tmp_path / "g.h5"
    assert main(["scan", "--task", "file", "--task-opt", f"path={tmp_path / 'd.h5'}", "--task-opt", "widths=8",
                 "--steps", "5", "--norms", "1", "--quiet", "--out", str(out2)]) == 0
    assert not read_scan(out2)["classification"]  # float labels: regression


@pytest.mark.parametrize("key, bad", [("x_train", "complex"), ("y_train", "boolean"), ("x_test", "boolean")])
def test_file_task_refuses_complex_and_boolean_arrays_in_one_line(tmp_path, capsys, key, bad):
    """Issue 31: complex values would lose their imaginary part and booleans would be read as numbers without a
    word; each is refused naming the array, before any file is written."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(20, 4)), "y_train": rng.integers(0, 3, 20),
              "x_test": rng.normal(size=(10, 4)), "y_test": rng.integers(0, 3, 10)}
    arrays[key] = arrays[key] * (1 + 1j) if bad == "complex" else arrays[key] > 0
    np.savez(tmp_path / "d.npz", **arrays)
    out = tmp_path / "f.h5"
    assert main(["scan", "--task", "file", "--task-opt", f"path={tmp_path / 'd.npz'}", "--steps", "5", "--norms",
                 "1", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{key} in " in err and f"is {bad} (dtype" in err
    assert not out.exists()


def _bad_files(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((3, 2)), y_train=np.zeros(3))
    (tmp_path / "garbage.h5").write_bytes(b"this is not hdf5 at all" * 10)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = np.arange(3)
    good = tmp_path / "good.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--out", str(good)]) == 0
    data = good.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.txt").write_text("my thesis notes\n")
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(data)
    with h5py.File(damaged, "r+") as f:
        del f["scan/status"]
    for i, text in enumerate(['norms = 5', 'batch_size = true', 'absolute = "no"', 'task_options = 3',
                              'seed = 1.7'], start=1):
        (tmp_path / f"types{i}.toml").write_text(text + "\n")
    (tmp_path / "unknown.toml").write_text("stpes = 3\n")
    (tmp_path / "text.npz").write_text("x_train,y_train\n1,2\n")
    with h5py.File(tmp_path / "grouped.h5", "w") as f:
        f.create_group("x_train")
        for k in ("y_train", "x_test", "y_test"):
            f[k] = np.zeros(3)
    with h5py.File(tmp_path / "badconfig.h5", "w") as f, h5py.File(good, "r") as g:
        f.attrs.update(g.attrs)
        f.attrs["config"] = "{not json"


BAD = [
    (["scan", "--norms", ""], "empty"),
    (["scan", "--norms", "1:x"], "not a number"),
    (["scan", "--norms", "3:1"], "below START"),
    (["scan", "--norms", "0:2"], "positive"),
    (["scan", "--norms=-1,2"], "positive"),
    (["scan", "--norms", "1:2:0"], "at least 1"),
    (["scan", "--restarts", "0"], "--restarts"),
    (["scan", "--steps", "abc"], "--steps"),
    (["scan", "--lr", "-1"], "--lr"),
    (["scan", "--task", "nope"], "teacher-student"),
    (["scan", "--task", "file", "--task-opt", "path={tmp}/missing.npz"], "does not exist"),
    (["scan", "--task", "file", "--task-opt", "path={tmp}/partial.npz"], "lacks x_test, y_test"),
    (["scan", "--task", "file", "--task-opt", "path={tmp}"], "is a directory, not a data file"),
    (["scan", "--task", "file", "--task-opt", "path={tmp}/text.npz"], "is not an .npz archive"),
    (["scan", "--task", "file", "--task-opt", "path={tmp}/grouped.h5"], "x_train in"),
    (["scan", *TINY, "--norms", "1,2", "--out", "{tmp}/badconfig.h5"], "root attribute 'config' is not JSON"),
    (["scan", "--task", "no_such_module_xyz:make"], "cannot import"),
    (["scan", "--task", "tasks_for_tests:missing"], "no function"),
    (["scan", "--task", "tasks_for_tests:not_a_task"], "expected landscape.tasks.Task"),
    (["scan", "--task", "teacher-student", "--task-opt", "bogus=1"], "no option 'bogus'"),
    (["scan", "--task", "teacher-student", "--task-opt", "width=wide"], "expected int"),
    (["scan", "--task", "modular", "--task-opt", "p=10"], "prime"),
    (["scan", "--task-opt", "novalue"], "KEY=VALUE"),
    (["scan", "--config", "{tmp}/none.toml"], "does not exist"),
    (["scan", "--constrain", "nothing*"], "matches no parameter"),
    (["scan", "--device", "tpu"], "--device"),
    (["scan", *TINY, "--norms", "1,2", "--out", "{tmp}/garbage.h5"], "not a readable HDF5"),
    (["scan", *TINY, "--norms", "1,2", "--out", "{tmp}/truncated.h5"], "not a readable HDF5"),
    (["scan", *TINY, "--norms", "1,2", "--out", "{tmp}/foreign.h5"], "not one written by landscape"),
    (["scan", *TINY, "--norms", "1,3", "--out", "{tmp}/good.h5"], "another configuration"),
    (["scan", "--task", "teacher-student", "--steps", "5", "--out", "{tmp}/good.h5"], "holds task"),
    (["plot", "{tmp}/missing.h5"], "no such file"),
    (["plot", "{tmp}/garbage.h5"], "not a readable HDF5"),
    (["plot", "{tmp}/truncated.h5"], "not a readable HDF5"),
    (["plot", "{tmp}/foreign.h5"], "not one written by landscape"),
    (["plot", "{tmp}/good.h5", "-o", "{tmp}/fig.jpg"], "format"),
    (["info", "{tmp}/garbage.h5"], "not a readable HDF5"),
    (["info", "{tmp}/truncated.h5"], "not a readable HDF5"),
    (["bogus-command"], "invalid choice"),
    (["scan", "--norms", "1:2:100000000000"], "at most"),
    (["scan", "--norms", "1:1.0000000000000002:4"], "too close"),
    (["scan", "--norms", "1e-40,1"], "between 1e-30 and 1e30"),
    (["scan", "--norms", "1e39"], "between 1e-30 and 1e30"),
    (["scan", "--task", "teacher-student", "--task-opt", "width=-1"], "task 'teacher-student'"),
    (["scan", "--task", "teacher-student", "--task-opt", "n_train=0"], "train set is empty"),
    (["scan", *TINY, "--out", "{tmp}/no/such/dir/x.h5"], "does not exist"),
    (["scan", *TINY, "--out", "{tmp}"], "is a directory"),
    (["scan", *TINY, "--out", ""], "--out: empty; name a file"),
    (["scan", *TINY, "--out", "{tmp}", "--overwrite"], "is a directory"),
    (["scan", *TINY, "--out", "{tmp}/foreign.h5", "--overwrite"], "not one written by landscape"),
    (["scan", *TINY, "--out", "{tmp}/notes.txt", "--overwrite"], "not a readable HDF5"),
    (["scan", *TINY, "--out", "{tmp}/partial.npz", "--overwrite"], "not a readable HDF5"),
    (["scan", "--task", "teacher-student", "--task-opt", "n_train=0", "--out", "{tmp}/good.h5", "--overwrite"],
     "train set is empty"),
    (["plot", "{tmp}/good.h5", "-o", "{tmp}/no/dir/fig.png"], "does not exist"),
    (["plot", "{tmp}/damaged.h5"], "damaged"),
    (["info", "{tmp}/damaged.h5"], "damaged"),
    (["scan", "--config", "{tmp}/types1.toml"], "norms must be a string"),
    (["scan", "--config", "{tmp}/types2.toml"], "batch_size must be an integer"),
    (["scan", "--config", "{tmp}/types3.toml"], "absolute must be true or false"),
    (["scan", "--config", "{tmp}/types4.toml"], "[task_options] must be a table"),
    (["scan", "--config", "{tmp}/types5.toml"], "seed must be an integer"),
    (["scan", "--config", "{tmp}/unknown.toml"], "unknown keys"),
]


@pytest.mark.parametrize("argv, fragment", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    _bad_files(tmp_path)
    snapshot = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    capsys.readouterr()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err
    # nothing already on disk was touched
    for p in tmp_path.iterdir():
        if p.name in snapshot:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == snapshot[p.name], p.name


def test_bad_input_in_a_real_process_has_no_traceback(env):
    r = subprocess.run([sys.executable, "-m", "landscape", "scan", "--norms", "5:1"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "below START" in r.stderr


def test_plot_of_all_diverged_scan_is_refused_cleanly(tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert main(["scan", "--task", "tasks_for_tests:explosive", "--norms", "40,50", "--steps", "5", "--quiet",
                 "--out", str(out)]) == 0
    assert (read_scan(out)["status"] == 2).all()
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "d.png")]) == 2
    assert "no finished scan points" in capsys.readouterr().err


def test_plot_draws_a_sweep_with_a_member_diverged_from_its_start(tmp_path, capsys):
    """A member whose every logged loss is NaN (init scale 1e40) must not stop the figures: its log axes stay
    linear and its panel says it diverged."""
    out = tmp_path / "t.h5"
    assert main(["train", "--steps", "20", "--init-scale", "1,1e40", "--quiet", "--out", str(out)]) == 0
    assert [t["status"] for t in read_trajectories(out)] == ["done", "diverged"]
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "t.png")]) == 0
    assert capsys.readouterr().err == ""
    assert {"t.png", "t-order.png", "t-metrics.png"} <= {p.name for p in tmp_path.iterdir()}


def test_overwrite_replaces_a_landscape_file(tmp_path):
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--out", str(out)]) == 0
    assert main(["scan", *TINY, "--norms", "1,2,3", "--out", str(out), "--overwrite"]) == 0
    assert len(read_scan(out)["alpha"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # no temporary file left behind


def test_overwrite_of_the_scan_keeps_the_runs_of_the_same_task(tmp_path):
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--out", str(out)]) == 0
    assert main(["train", *TINY, "--out", str(out)]) == 0
    runs = read_trajectories(out)
    assert main(["scan", *TINY, "--norms", "1,2,3", "--out", str(out), "--overwrite"]) == 0
    assert len(read_scan(out)["alpha"]) == 3
    kept = read_trajectories(out)
    assert [t["name"] for t in kept] == [t["name"] for t in runs]
    np.testing.assert_array_equal(kept[0]["train_loss"], runs[0]["train_loss"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


@pytest.mark.parametrize("command", ["train", "scan --branch down"])
def test_overwrite_refused_for_another_task_names_the_file_and_leaves_nothing(tmp_path, capsys, command):
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--out", str(out)]) == 0
    if command == "train":
        assert main(["train", *TINY, "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    argv = [*command.split(), "--task", "tasks_for_tests:tiny_head", "--steps", "5", "--norms", "1,2", "--quiet",
            "--overwrite", "--out", str(out)]
    assert main([a for a in argv if command == "scan --branch down" or a not in ("--norms", "1,2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"landscape: error: {out}: holds task tasks_for_tests:tiny ") and ".new" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # no staging copy, no record
    assert out.read_bytes() == before


def test_a_scan_dataset_of_another_shape_is_one_line(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1,2,3", "--out", str(out)]) == 0
    with h5py.File(out, "r+") as f:
        old = f["scan/test_loss"][()]
        del f["scan/test_loss"]
        f["scan/test_loss"] = old[:2]
    for argv in (["info", str(out)], ["plot", str(out), "-o", str(tmp_path / "s.png")], ["analyze", str(out)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "damaged or incomplete" in err and "test_loss" in err


def test_resuming_a_trajectory_without_its_steps_is_one_line(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    with h5py.File(out, "r+") as f:
        name = next(iter(f["trajectories"]))
        del f["trajectories"][name]["step"]
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged or incomplete" in err and name in err
    assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 0  # the way out it names


def test_resume_with_equivalent_task_options(tmp_path):
    """Options given as strings, as TOML values or left at their defaults are the same experiment."""
    out = tmp_path / "m.h5"
    base = ["scan", "--task", "modular", "--steps", "3", "--norms", "1,2", "--quiet", "--out", str(out)]
    assert main([*base, "--task-opt", "p=7"]) == 0
    cfg = tmp_path / "m.toml"
    cfg.write_text("[task_options]\np = 7\nseed = 0\n")
    assert main([*base, "--config", str(cfg)]) == 0


def test_info_json_is_strict_json(tmp_path, capsys):
    import json

    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "1,2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", "--json", str(out)]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["scan"]["train_acc"] == [[None], [None]]


def test_trajectory_tables_line_up_with_long_names():
    from landscape import report

    series = {k: np.array([0.5]) for k in report.MAIN_SERIES}
    trajs = [{"name": name, "step": np.array([10]), "series": [*series, "probe_r2"], "probe_r2": np.array([0.9]),
              "weight_decay": 0.1, "init_scale": 1.0, "seed": 0, "lr": lr, "train_frac": 1.0, "status": "done",
              **series}
             for name, lr in (("short", 1e-3), ("lr0.000316227766_wd0.1_init1_frac1_seed0_and_more", 3.16e-4))]
    for text in (report.trajectory_table(trajs), report.metrics_table(trajs, {})):
        rows = [line for line in text.splitlines() if line.startswith(("trajectory", "short", "lr0"))]
        ends = {[m.end() for m in re.finditer(r"\S+", row)][1] for row in rows}  # right-aligned second column
        assert len(rows) == 3 and len(ends) == 1, text
    assert report.trajectory_table(trajs).splitlines()[0].split()[1] == "lr"  # shown where it varies


def test_plot_into_a_directory_or_a_read_only_one_is_one_line(tmp_path, capsys, monkeypatch):
    """Issue 31: ``-o`` naming a directory (even one called *.png) is refused before any figure is written, and a
    write the system refuses is one line naming the figure, not a traceback."""
    out = tmp_path / "s.h5"
    assert main(["scan", *TINY, "--norms", "0.5:2:3", "--out", str(out)]) == 0
    (tmp_path / "d.png").mkdir()
    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "d.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory, not a file" in err
    import errno
    from landscape.figures import landscape as landscape_plot

    def refuse(path, data, mode_of=None):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(landscape_plot, "write_durably", refuse)
    assert main(["plot", str(out), "-o", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "f.png: cannot write (Read-only file system); the figure was not written" in err
    assert not (tmp_path / "f.png").exists()

"""The Python API (``import landscape as ls``): the same files as the command line, labelled results, exceptions
instead of exits, listed options, tracebacks on request and the thread setting."""

import json
import re
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from doc_pages import code_blocks

import landscape as ls
from landscape import api, cli
from landscape.config import settings as config
from landscape.cli import main
from test_faults import _datasets

ROOT = Path(__file__).parent.parent
TINY = ["--task", "tasks_for_tests:tiny"]
SCAN = ["scan", *TINY, "--norms", "0.5:2:4", "--restarts", "2", "--steps", "20", "--history", "5", "--save-params",
        "--quiet"]
SCAN_KW = dict(task="tasks_for_tests:tiny", norms="0.5:2:4", restarts=2, steps=20, history=5, save_params=True,
               quiet=True)
TRAIN = ["train", *TINY, "--weight-decay", "0.1,1", "--seeds", "0,1", "--steps", "40", "--log-every", "10",
         "--checkpoint-every", "20", "--quiet"]
TRAIN_KW = dict(task="tasks_for_tests:tiny", weight_decay=[0.1, 1], seeds="0,1", steps=40, log_every=10,
                checkpoint_every=20, quiet=True)
PHASES = ["phases", *TINY, "--x", "lr=0.003,0.03", "--y", "weight-decay=0,1", "--steps", "30", "--log-every", "10",
          "--train-loss", "0.05", "--test-loss", "0.05", "--quiet"]
PHASES_KW = dict(task="tasks_for_tests:tiny", x="lr=0.003,0.03", y="weight-decay=0,1", steps=30, log_every=10,
                 train_loss=0.05, test_loss=0.05, quiet=True)


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # a run's --threads is process-wide


@pytest.mark.parametrize("argv, function, kw", [
    (SCAN, api.scan, SCAN_KW),
    (["scan", *TINY, "--norms", "0.5:2:4", "--steps", "20", "--branch", "both", "--quiet"], api.scan,
     dict(task="tasks_for_tests:tiny", norms="0.5:2:4", steps=20, branch="both", quiet=True)),
    (TRAIN, api.train, TRAIN_KW),
    (PHASES, api.phases, PHASES_KW),
], ids=["scan", "branches", "train", "phases"])
def test_the_api_and_the_command_line_write_the_same_file(tmp_path, argv, function, kw):
    assert main([*argv, "--out", str(tmp_path / "cli.h5")]) == 0
    result = function(**kw, out=tmp_path / "api.h5")
    assert _datasets(tmp_path / "api.h5") == _datasets(tmp_path / "cli.h5")
    if function is api.phases:  # the diagram, labelled by its axes
        d = result["phases"]
        assert d["phase"].dims == ("lr", "weight_decay", "seed") and d.sizes["lr"] == 2
        assert "comprehension" in d["phase"].attrs["flag_meanings"]


def test_shards_merged_from_the_api_equal_the_command_lines(tmp_path):
    c, a = tmp_path / "cli", tmp_path / "api"  # the same names: the merged file records its shards' names
    c.mkdir(), a.mkdir()
    for i in range(2):
        assert main([*SCAN, "--out", str(c / "s.h5"), "--shard", f"{i}/2"]) == 0
        assert api.scan(**SCAN_KW, out=a / "s.h5", shard=f"{i}/2") is None
    assert main(["merge", str(c / "s.shard-*.h5"), "-o", str(c / "s.h5")]) == 0
    tree = ls.merge(str(a / "s.shard-*.h5"), a / "s.h5")
    assert _datasets(a / "s.h5") == _datasets(c / "s.h5")
    assert (tree["scan"]["status"].values == 1).all()


def test_scan_returns_a_labelled_dataset(tmp_path):
    ds = ls.scan(**SCAN_KW)  # out=None: a temporary file, results in memory
    assert set(ds.sizes) == {"norm", "restart", "history_step", "parameter"} and ds.sizes["norm"] == 4
    assert "alpha" in ds.coords and ds.alpha.dims == ("norm",)
    near = ds.sel(norm=float(ds.norm[2]) * 1.01, method="nearest")
    assert near.alpha == ds.alpha[2] and near.train_loss.shape == (2,)
    assert list(ds.swap_dims(norm="alpha").sel(alpha=2.0).train_loss.values) == list(ds.train_loss.values[-1])
    assert ds.status.attrs["flag_meanings"] == "pending done diverged"
    assert list(ds.status.attrs["flag_values"]) == [0, 1, 2]
    assert "description" in ds.train_loss.attrs and ds.norm.attrs["units"] == "L2 norm"


def test_open_reads_every_group_with_its_coordinates(tmp_path):
    path = tmp_path / "x.h5"
    ls.scan(**SCAN_KW, out=path)
    ls.scan(**{**SCAN_KW, "branch": "down", "save_params": False, "history": 0}, out=path)
    ls.train(**TRAIN_KW, out=path)
    tree = ls.open(path)
    assert {"scan", "branches", "trajectories"} <= set(tree.children)
    stored = ls.store.read_scan(path)
    np.testing.assert_array_equal(tree["scan"]["train_loss"].values, stored["train_loss"])
    np.testing.assert_array_equal(tree["scan"]["norm"].values, stored["norm"])
    assert tree["branches/down"]["train_loss"].dims == ("norm", "restart")
    t = tree["trajectories"].to_dataset()
    assert t.train_loss.dims == ("trajectory", "step")
    for key in ("lr", "weight_decay", "init_scale", "seed", "train_frac"):
        assert t[key].dims == ("trajectory",)
    one = t.where(t.weight_decay == 1, drop=True)
    assert sorted(one.seed.values.tolist()) == [0, 1]
    assert tree.attrs["task"] == "tasks_for_tests:tiny"


def test_a_two_norm_grid_has_both_axes_labelled():
    ds = ls.scan(task="tasks_for_tests:tiny", norms=["0.*=0.5:2:3", "*=0.3:3:2"], steps=10, quiet=True)
    assert ds.train_loss.dims == ("norm_1", "norm_2", "restart")
    assert ds.alpha_1.dims == ("norm_1",) and ds.alpha_2.dims == ("norm_2",)
    assert ds.sizes["norm_1"] == 3 and ds.sizes["norm_2"] == 2


def test_a_task_object_made_in_the_notebook(tmp_path):
    from tasks_for_tests import tiny

    task = tiny()
    task.name = "my-notebook-task"
    ds = ls.train(task, steps=20, log_every=10, quiet=True, out=tmp_path / "t.h5")
    assert ds.sizes["trajectory"] == 1
    with h5py.File(tmp_path / "t.h5") as f:
        assert f.attrs["task"] == "my-notebook-task"
    with pytest.raises(ls.BadInput, match="takes no task_options"):
        ls.train(task, task_options={"n": 3})


def test_analyze_and_plot_return_objects_and_write_only_when_asked(tmp_path):
    path = tmp_path / "x.h5"
    ls.scan(**SCAN_KW, out=path)
    ls.train(**TRAIN_KW, out=path)
    result = ls.analyze(path, write=False)
    assert "w_c" in json.dumps(result.to_dict()) and "trajectory" in repr(result)
    assert ls.open(path).attrs.get("analysis") is None  # write=False stored nothing
    figures = ls.plot(path)
    assert figures and all(hasattr(f, "savefig") for f in figures)
    assert not list(tmp_path.glob("*.png"))
    ls.plot(path, out=tmp_path / "f.png")
    assert (tmp_path / "f.png").exists()


BAD = [  # (command-line arguments, the same call through the API, the words of the one-line error)
    (["--restarts", "0"], {"restarts": 0}, "restarts must be an integer >= 1, got 0"),
    (["--norms", "x:y"], {"norms": "x:y"}, "START 'x' is not a number"),
    (["--method", "nope"], {"method": "nope"}, "must be one of"),
    (["--task", "no_such_module_xyz:make"], {"task": "no_such_module_xyz:make"}, "cannot import"),
    (["--task", "teacher-student", "--task-opt", "bogus=1"], {"task": "teacher-student",
                                                             "task_options": {"bogus": 1}}, "no option 'bogus'"),
    (["--constrain", "nothing*"], {"constrain": "nothing*"}, "matches no parameter"),
    (["--device", "tpu"], {"device": "tpu"}, "--device"),
]


@pytest.mark.parametrize("argv, kw, words", BAD, ids=[b[2][:24] for b in BAD])
def test_bad_input_is_the_same_one_line_error_through_the_api(tmp_path, capsys, argv, kw, words):
    assert main(["scan", "--out", str(tmp_path / "c.h5"), *argv]) == 2
    assert words in capsys.readouterr().err
    with pytest.raises(ls.BadInput, match=re.escape(words)) as e:
        api.scan(out=tmp_path / "a.h5", **kw)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
    assert not (tmp_path / "a.h5").exists()
    with pytest.raises(ls.BadInput, match="unknown setting"):
        api.scan(restart=3)


LISTED = {"init_scale": "1,2", "weight_decay": "0.1,0.2", "seeds": "0,1", "lr": "0.001,0.01", "train_frac": "0.5,1",
          "betas": "0.9,0.99", "metrics": "norm,probe_r2", "group_lr": "0.001,0.01", "group_weight_decay": "0,1"}


@pytest.mark.parametrize("name", [f.name for f in config.dataclasses.fields(config.TrainConfig)
                                  if "rule" in f.metadata and f.metadata["rule"].listed])
def test_every_listed_option_takes_a_comma_list_and_adds_up_when_repeated(name):
    flag, text = "--" + name.replace("_", "-"), LISTED[name]
    first, second = text.split(",")
    parse = cli.build_parser().parse_args
    together = getattr(parse(["train", flag, text]), name)
    apart = getattr(parse(["train", flag, first, flag, second]), name)
    assert together == apart and len(together) == 2
    group = ["--group", "embed*"] if name.startswith("group_") else []  # the group's rates need the group
    cfg = cli.config_of(parse(["train", *group, flag, text]), config.TrainConfig)
    assert getattr(cfg, name) == together


def test_traceback_on_request_shows_the_frame_in_the_users_task(tmp_path, capsys, monkeypatch):
    argv = ["scan", "--task", "tasks_for_tests:broken_model", "--norms", "1", "--steps", "2",
            "--out", str(tmp_path / "b.h5"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "(in forward, tasks_for_tests.py:" in err
    assert re.search(r"called with x: \[\d+, 3\]\)", err), err  # the user's function and its arguments' shapes
    assert main(["--traceback", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "tasks_for_tests.py" in err and "RuntimeError: this model cannot take" in err
    monkeypatch.setenv("LANDSCAPE_TRACEBACK", "1")
    assert main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_threads_are_applied_and_stored(tmp_path, monkeypatch):
    out = tmp_path / "t.h5"
    assert main(["scan", *TINY, "--norms", "1", "--steps", "2", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert torch.get_num_threads() == 1
    with h5py.File(out) as f:
        assert json.loads(f.attrs["config"])["scan"]["threads"] == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    ls.scan(task="tasks_for_tests:tiny", norms="1", steps=2, quiet=True)
    assert torch.get_num_threads() == 2


def _documented_commands() -> list[str]:
    """Every ``landscape ...`` command line in a code block of the README and the docs."""
    found = []
    for _, block in code_blocks(("", "bash", "sh", "console", "shell")):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            if "[" in line or "..." in line:
                continue  # a synopsis (landscape scan [--task NAME] ...), not a command
            for part in re.split(r"&&|\|\||;|\|", line):
                part = part.strip()
                if part.startswith("landscape "):
                    found.append(part)
    return found


COMMANDS = _documented_commands()


@pytest.mark.parametrize("line", COMMANDS)
def test_every_documented_command_parses(line, monkeypatch):
    monkeypatch.chdir(ROOT)  # presets are named relative to the repository
    argv = shlex.split(line)[1:]
    if argv[:1] == ["submit"] and "--" in argv:  # the launcher's flags, then the command it shards
        cut = argv.index("--")
        cli.build_parser().parse_args(argv[:cut])
        argv = [argv[1], *argv[cut + 1:]]
    args = cli.build_parser().parse_args(argv)
    kinds = {"scan": config.ScanConfig, "train": config.TrainConfig, "phases": api.PhasesConfig}
    if args.command in kinds:
        cli.config_of(args, kinds[args.command])


def test_the_documentation_has_commands_to_check():
    assert len(COMMANDS) >= 20


def test_netcdf_readers_see_the_labelled_axes_without_landscape(tmp_path):
    """``xarray.open_dataset(path, group=..., engine="h5netcdf")`` alone: the scan's dimensions are norm and
    restart with alpha a coordinate (two-norm: both axes), a branch the same, a trajectory's series along step."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    path, plane = tmp_path / "x.h5", tmp_path / "p.h5"
    ls.scan(**SCAN_KW, out=path)
    ls.scan(**{**SCAN_KW, "branch": "down", "save_params": False, "history": 0}, out=path)
    ls.train(**TRAIN_KW, out=path)
    ls.scan(task="tasks_for_tests:tiny", norms=["0.*=0.5:2:3", "*=0.3:3:2"], steps=10, quiet=True, out=plane)
    seen = {}
    for name, file, group in [("scan", path, "scan"), ("branch", path, "branches/down"), ("two-norm", plane, "scan"),
                              ("trajectory", path, "trajectories/wd0.1_init1_seed0")]:
        with xr.open_dataset(file, group=group, engine="h5netcdf", phony_dims="access") as ds:
            seen[name] = sorted(ds.coords)
            if name != "trajectory":
                assert ds.status.attrs["flag_meanings"] == "pending done diverged"
    assert seen["scan"] == ["alpha", "norm", "parameter", "restart"]  # with its saved parameters
    assert seen["branch"] == ["alpha", "norm", "restart"]
    assert seen["two-norm"] == ["alpha_1", "alpha_2", "norm_1", "norm_2", "restart"]
    assert seen["trajectory"] == ["step"]
    with xr.open_dataset(path, group="scan", engine="h5netcdf") as ds:
        assert ds.train_loss.dims == ("norm", "restart")
        assert float(ds.sel(norm=float(ds.norm[1]), method="nearest").alpha) == float(ds.alpha[1])

"""A resumed run checks everything a finished point or trajectory holds, and recomputes what is incomplete.

Each test damages a finished file the way a lost write would (NaN saved parameters, a history row, a step count,
a checkpoint), reruns the same command, and checks that the run says how many it recomputes and ends with a file
equal to an undisturbed run's.
"""

import shutil

import h5py
import numpy as np
import pytest

from landscape.cli import main
from test_faults import _datasets

TINY = ["--task", "tasks_for_tests:tiny"]
SCAN = ["scan", *TINY, "--norms", "0.5:2:4", "--restarts", "2", "--steps", "20", "--chunk", "2", "--history", "5",
        "--save-params", "--quiet"]
BRANCH = ["scan", *TINY, "--norms", "0.5:2:4", "--restarts", "2", "--steps", "20", "--branch", "down", "--quiet"]
TRAIN = ["train", *TINY, "--weight-decay", "0.1,1", "--init-scale", "2", "--steps", "60", "--checkpoint-every", "20",
         "--log-every", "10", "--quiet"]


@pytest.fixture
def clean(tmp_path):
    def make(argv):
        out = tmp_path / "clean.h5"
        assert main([*argv, "--out", str(out)]) == 0
        damaged = tmp_path / "damaged.h5"
        shutil.copyfile(out, damaged)
        return out, damaged
    return make


def _rerun(argv, path, capsys) -> str:
    capsys.readouterr()
    assert main([*argv, "--out", str(path)]) == 0
    return capsys.readouterr().err


def test_scan_points_marked_done_without_their_parameters_history_or_steps_are_recomputed(clean, capsys):
    out, damaged = clean(SCAN)
    with h5py.File(damaged, "r+") as f:
        f["scan/params"][1, 0, 3] = np.nan  # a lost write of saved parameters
        f["scan/history/train_loss"][2, 1, -1] = np.nan
        f["scan/steps"][3, 0] = -1
    err = _rerun(SCAN, damaged, capsys)
    assert "3 points marked done but incomplete" in err and "recomputed" in err
    assert _datasets(damaged) == _datasets(out)
    assert "incomplete" not in _rerun(SCAN, damaged, capsys)  # once repaired, nothing more to do


def test_saved_parameters_of_the_wrong_shape_are_a_damaged_file(clean, capsys):
    _, damaged = clean(SCAN)
    with h5py.File(damaged, "r+") as f:
        del f["scan/params"]
        f.create_dataset("scan/params", data=np.zeros((4, 2, 5), np.float32))
    capsys.readouterr()
    assert main([*SCAN, "--out", str(damaged)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged or incomplete" in err[0] and "params" in err[0]


def test_a_branch_point_found_incomplete_is_recomputed_with_every_norm_after_it(clean, capsys):
    argv = [*BRANCH, "--save-params"]
    out, damaged = clean(argv)
    with h5py.File(damaged, "r+") as f:
        f["branches/down/train_loss"][1, 1] = np.nan  # the down branch's third norm (it runs from the largest)
    err = _rerun(argv, damaged, capsys)
    assert "1 branch point marked done but incomplete" in err
    assert _datasets(damaged) == _datasets(out)


def test_a_branch_whose_minimizers_are_lost_starts_over(clean, capsys):
    out, damaged = clean(BRANCH)  # no saved parameters: only last_params says where to go on from
    with h5py.File(damaged, "r+") as f:
        f["branches/down/status"][0, 0] = 0  # the branch's last norm pending, as after a kill
        f["branches/down/last_params"][0, 2] = np.nan  # and the minimizers at the norm before it lost
    err = _rerun(BRANCH, damaged, capsys)
    assert "the down branch from its first norm" in err
    assert _datasets(damaged) == _datasets(out)


def _slots(f, name):
    g = f[f"trajectories/{name}"]
    return sorted(((int(g[s].attrs["step"]), s) for s in ("checkpoint_a", "checkpoint_b")), reverse=True)


def test_an_incomplete_checkpoint_resumes_from_the_earlier_one(clean, capsys):
    out, damaged = clean(TRAIN)
    with h5py.File(damaged, "r+") as f:
        name = sorted(f["trajectories"])[0]
        (step, slot), (earlier, _) = _slots(f, name)
        f[f"trajectories/{name}/{slot}/m"][0] = np.nan
    err = _rerun(TRAIN, damaged, capsys)
    assert f"1 trajectory checkpoint or log incomplete, recomputed from an earlier step: {name} from step " \
           f"{earlier}" in err
    assert _datasets(damaged) == _datasets(out)


@pytest.mark.parametrize("damage", ["both checkpoints", "wrong shape", "a logged loss", "a step past the run"])
def test_a_trajectory_with_no_whole_state_or_log_starts_over(clean, capsys, damage):
    out, damaged = clean(TRAIN)
    with h5py.File(damaged, "r+") as f:
        name = sorted(f["trajectories"])[1]
        g = f[f"trajectories/{name}"]
        if damage == "both checkpoints":
            g["checkpoint_a/theta"][2] = np.inf
            del g["checkpoint_b"].attrs["adam_t"]
        elif damage == "wrong shape":
            for s in ("checkpoint_a", "checkpoint_b"):
                del g[s]["v"]
                g[s].create_dataset("v", data=np.zeros(3, np.float32))
        elif damage == "a step past the run":  # issue 31: a checkpoint's step must lie within the run
            g.attrs["checkpoint_step"] = 10 ** 9
            for s in ("checkpoint_a", "checkpoint_b"):
                g[s].attrs["step"] = 10 ** 9
            g.attrs["status"] = "running"
        else:
            g["test_loss"][1] = np.nan
    err = _rerun(TRAIN, damaged, capsys)
    assert f"{name} from step 0" in err
    assert _datasets(damaged) == _datasets(out)

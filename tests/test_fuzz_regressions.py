"""Every failure the fuzzer (``tests/test_fuzz.py``, ``tests/test_fuzz_files.py``) found, kept as a named test.

Each is the shrunk example hypothesis reported, rebuilt without hypothesis so that it runs as it was found.
"""

import shutil

import h5py
import pytest

from landscape.cli import main
from test_fuzz_files import KINDS, _read_all, _verdict
from test_full_disk import made  # noqa: F401 -- the fixture: files a command reads


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = {}
    for kind in ("branches", "phases", "scan", "train"):
        path = tmp_path_factory.mktemp(kind) / "f.h5"
        for argv in KINDS[kind]:
            assert main([*argv, "--out", str(path)]) == 0
        out[kind] = path
    return out


def _damaged(files, kind, tmp_path, edit):
    path = tmp_path / "damaged.h5"
    shutil.copyfile(files[kind], path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _refused_by_all(path, tmp_path, *words):
    results = _read_all(path, tmp_path)
    _verdict(results)
    for command, code, err in results:
        assert code == 2, (command, err)
        for w in words:
            assert w in err, (command, err)


def test_merge_of_a_branch_without_its_alpha_axis(files, tmp_path):
    """Found: ``('branches', 'remove', '/branches/down/alpha')``: merge raised KeyError."""
    path = _damaged(files, "branches", tmp_path, lambda f: f.__delitem__("branches/down/alpha"))
    _refused_by_all(path, tmp_path, "damaged or incomplete landscape file", "alpha")


def test_merge_of_a_phase_grid_whose_trajectory_lost_its_test_loss(files, tmp_path):
    """Found: ``('phases', 'remove', '/trajectories/lr0.03_wd1_init1_seed0/test_loss')``: merge (classifying the
    phase grid) raised KeyError."""
    path = _damaged(files, "phases", tmp_path, lambda f: f.__delitem__("trajectories/lr0.03_wd1_init1_seed0/test_loss"))
    _refused_by_all(path, tmp_path, "/trajectories/lr0.03_wd1_init1_seed0/test_loss is missing")


@pytest.mark.parametrize("name", ["status", "train_loss", "test_loss", "norm"])
def test_a_scan_without_a_dataset_every_scan_holds(files, tmp_path, name):
    path = _damaged(files, "scan", tmp_path, lambda f: f.__delitem__(f"scan/{name}"))
    _refused_by_all(path, tmp_path, f"/scan/{name} is missing")


def test_a_flipped_bit_in_a_group_index(files, tmp_path):
    """Found: ``('branches', 'flip', [(112, 1)])``, a bit of the root group's B-tree signature: every reader raised
    RuntimeError ("wrong B-tree signature") from h5py."""
    data = bytearray(files["branches"].read_bytes())
    data[data.index(b"TREE")] ^= 1
    path = tmp_path / "flipped.h5"
    path.write_bytes(bytes(data))
    _refused_by_all(path, tmp_path, "damaged or incomplete landscape file")


def test_analyze_of_a_file_with_nothing_finished_is_one_line(files, tmp_path, capsys):
    """Found by the full-disk fuzzer: a scan stopped before its first point, analyzed, printed a note and then the
    error (two lines)."""
    path = _damaged(files, "scan", tmp_path, lambda f: f["scan/status"].__setitem__(..., 0))
    capsys.readouterr()
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds neither finished scan points nor trajectories" in err, err


def test_a_trajectory_attribute_of_the_wrong_kind(files, tmp_path):
    """Found (long profile): ``('phases', 'attribute', '/trajectories/lr0.003_wd0_init1_seed0', 1)``, its ``steps``
    set to an array: analyze and merge raised TypeError from the prediction's schedule."""
    name = "/trajectories/lr0.003_wd0_init1_seed0"
    path = _damaged(files, "phases", tmp_path, lambda f: f[name].attrs.__setitem__("steps", [0.0, 0.0, 0.0]))
    _refused_by_all(path, tmp_path, f"{name} attribute steps is [0.0, 0.0, 0.0], not an integer")


def test_a_status_code_the_format_does_not_define(files, tmp_path):
    """Found (long profile): ``('branches', 'flip', [(33659, 4)])``, a status code turned into 5: info raised
    ValueError ("5 is not a valid Status") from the report."""
    path = _damaged(files, "branches", tmp_path, lambda f: f["branches/up/status"].__setitem__((0, 0), 5))
    results = _read_all(path, tmp_path)
    _verdict(results)
    for command, code, err in results[:3]:  # info, plot, analyze
        assert code == 2 and "/branches/up/status holds 5, not a status code" in err, (command, err)


def test_a_full_disk_fuzzing_plot_watches_its_figures(tmp_path, env, made):
    """Found (long profile): ``('plot', 'enospc', [(0.0, 0.0)])``: the fuzzer watched no file of plot's (it writes
    figures, not x.h5), so the fault server found no call to fail and crashed. Now it fails plot's first write."""
    from test_fuzz_files import _full_disk_prop
    from test_faults import _strace_works

    if not _strace_works():
        pytest.skip("strace is missing or ptrace is not permitted here")
    count = [0]
    prop = _full_disk_prop(tmp_path, env, made, count)
    prop.hypothesis.inner_test("plot", "enospc", [(0.0, 0.0)])
    assert count[0] == 1


def test_a_trajectory_without_its_constrained_norm(files, tmp_path):
    """Found (long profile): ``('train', 'remove', '/trajectories/wd0.1_init2_seed0/constrained_norm')``: plot
    raised KeyError (the figures and the predictions read every trajectory's norm)."""
    name = "/trajectories/wd0.1_init2_seed0/constrained_norm"
    path = _damaged(files, "train", tmp_path, lambda f: f.__delitem__(name))
    _refused_by_all(path, tmp_path, f"{name} is missing")


def test_a_phase_grid_without_an_attribute_of_its_rule(files, tmp_path):
    """Found (long profile): ``('phases', 'attribute', '/phases', 13)``, its ``test_loss`` attribute removed:
    analyze raised KeyError rebuilding the classification rule."""
    path = _damaged(files, "phases", tmp_path, lambda f: f["phases"].attrs.__delitem__("test_loss"))
    results = _read_all(path, tmp_path)
    _verdict(results)
    assert any(code == 2 and "phases attribute test_loss is missing" in err for _, code, err in results), results


def test_a_trajectory_without_an_attribute_the_readers_use(files, tmp_path):
    """Found (long profile): ``('train', 'attribute', '/trajectories/wd0.1_init2_seed0', 15560798)``, its ``lr``
    attribute removed: info and analyze raised KeyError, plot TypeError."""
    name = "/trajectories/wd0.1_init2_seed0"
    path = _damaged(files, "train", tmp_path, lambda f: f[name].attrs.__delitem__("lr"))
    _refused_by_all(path, tmp_path, f"{name} attribute lr is missing")

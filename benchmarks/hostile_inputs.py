"""Hostile inputs, one class at a time: how each ends (one line and exit 2, a traceback, a hang, silence).

Runs every case as a separate ``python -m landscape`` process against the checkout named by ``--repo`` (default:
this one), so two checkouts give a before/after table from one machine:

    python benchmarks/hostile_inputs.py                       # this checkout
    git worktree add /tmp/before <commit>
    python benchmarks/hostile_inputs.py --repo /tmp/before --repo .

A case is "clean" when it exits 2 with one line on stderr and no traceback (or, for a file that is fine to read,
exits 0), and, where it read a file, leaves the file's bytes unchanged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

TINY = ["--task", "tasks_for_tests:tiny", "-q"]


def _running(g) -> None:
    """Mark a finished trajectory as one a kill interrupted: its next run resumes from its checkpoint."""
    g.attrs["status"] = "running"


def _files(d: Path, repo: Path) -> None:
    """The inputs the cases damage: a finished scan-and-train file, its damaged copies, data files."""
    env = _env(repo)
    run = lambda *a: subprocess.run([sys.executable, "-m", "landscape", *a], env=env, cwd=d, check=True,  # noqa
                                    capture_output=True)
    run("scan", *TINY, "--norms", "0.5:2:3", "--steps", "5", "--out", "ok.h5")
    run("train", *TINY, "--steps", "20", "--checkpoint-every", "10", "--out", "ok.h5")
    run("train", *TINY, "--steps", "40", "--checkpoint-every", "10", "--out", "ck.h5")
    damage = {
        "vlen.h5": lambda f: f.create_dataset("scan/weird", (3,), dtype=h5py.vlen_dtype(np.float32)),
        "strings.h5": lambda f: (f.__delitem__("scan/train_loss"), f.__setitem__("scan/train_loss",
                                                                                 np.array([b"a", b"b", b"c"]))),
        "status.h5": lambda f: (f.__delitem__("scan/status"), f.__setitem__("scan/status", np.full((3, 1), 0.5))),
        "extra.h5": lambda f: f.create_group("mystuff").create_dataset("x", data=np.arange(3)),
        "ckpt_shape.h5": lambda f: [(_running(f[f"trajectories/{n}"]),
                                     f[f"trajectories/{n}/checkpoint_{s}"].__delitem__("theta"),
                                     f[f"trajectories/{n}/checkpoint_{s}"].create_dataset("theta",
                                                                                          data=np.zeros((1, 100, 5))))
                                    for n in f["trajectories"] for s in "ab"],
        "ckpt_past.h5": lambda f: [(_running(f[f"trajectories/{n}"]),
                                    f[f"trajectories/{n}"].attrs.__setitem__("checkpoint_step", 10 ** 9),
                                    f[f"trajectories/{n}/checkpoint_{s}"].attrs.__setitem__("step", 10 ** 9))
                                   for n in f["trajectories"] for s in "ab"],
        "missing.h5": lambda f: f.__delitem__("scan/status"),
        "ckpt_nan.h5": lambda f: [(_running(f[f"trajectories/{n}"]),
                                   f[f"trajectories/{n}/checkpoint_{s}/theta"].__setitem__(..., np.nan))
                                  for n in f["trajectories"] for s in "ab"],
    }
    for name, fn in damage.items():
        shutil.copyfile(d / ("ck.h5" if name.startswith("ckpt") else "ok.h5"), d / name)
        with h5py.File(d / name, "r+") as f:
            fn(f)
    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.random.default_rng(1).normal(size=(20, 1))
    np.savez(d / "complex.npz", x_train=x.astype(np.complex64), y_train=y, x_test=x, y_test=y)
    np.savez(d / "bool.npz", x_train=x > 0, y_train=y, x_test=x, y_test=y)
    np.savez(d / "nan.npz", x_train=np.where(x > 1, np.nan, x), y_train=y, x_test=x, y_test=y)
    (d / "badtask.py").write_text(BADTASK)
    (d / "dir.png").mkdir()
    os.symlink("loop2.h5", d / "loop1.h5")
    os.symlink("loop1.h5", d / "loop2.h5")


BADTASK = """
import torch
from landscape.tasks import Task, mlp, mse


def nan_labels():
    x, y = torch.randn(20, 3), torch.randn(20, 1)
    y[3] = float("nan")
    return Task(name="nan_labels", model=lambda: mlp([3, 8, 1]), x_train=x, y_train=y, x_test=x, y_test=y, loss=mse)
"""

CASES = [  # (class, case, argv, file it reads that must not change)
    ("paths", "plot -o a directory named *.png", ["plot", "ok.h5", "-o", "dir.png"], "ok.h5"),
    ("paths", "plot -o in an unwritable directory", ["plot", "ok.h5", "-o", "/proc/x.png"], "ok.h5"),
    ("paths", "--out a symlink loop", ["scan", *TINY, "--norms", "1", "--steps", "2", "--out", "loop1.h5"], None),
    ("paths", "--out in an unwritable directory", ["scan", *TINY, "--norms", "1", "--out", "/sys/x.h5"], None),
    ("numbers", "--steps 10^18", ["train", *TINY, "--steps", "1000000000000000000", "--out", "n.h5"], None),
    ("numbers", "--steps 2^63", ["train", *TINY, "--steps", "9223372036854775808", "--out", "n.h5"], None),
    ("numbers", "--restarts 10^11", ["scan", *TINY, "--restarts", "100000000000", "--norms", "1", "--out", "n.h5"],
     None),
    ("numbers", "--log-points 10^12", ["train", *TINY, "--log-points", "1000000000000", "--out", "n.h5"], None),
    ("numbers", "--steps 10^11 --log-every 1", ["train", *TINY, "--steps", "100000000000", "--log-every", "1",
                                                 "--out", "n.h5"], None),
    ("numbers", "--threads 10^5", ["train", *TINY, "--threads", "100000", "--steps", "2", "--out", "n.h5"], None),
    *[("foreign files", f"{cmd} on {name}", [cmd, name, *(["-o", "f.png"] if cmd == "plot" else [])], name)
      for name in ("vlen.h5", "strings.h5", "status.h5", "extra.h5") for cmd in ("info", "plot", "analyze")],
    *[("foreign files", f"scan --out {name}", ["scan", *TINY, "--norms", "0.5:2:3", "--steps", "5", "--out", name],
       name) for name in ("vlen.h5", "strings.h5", "status.h5", "extra.h5")],
    ("checkpoints", "resume from checkpoints of the wrong shape",
     ["train", *TINY, "--steps", "40", "--checkpoint-every", "10", "--out", "ckpt_shape.h5"], None),
    ("checkpoints", "resume from checkpoints whose step lies past the run",
     ["train", *TINY, "--steps", "40", "--checkpoint-every", "10", "--out", "ckpt_past.h5"], None),
    *[("damaged files", f"{cmd} on a file without /scan/status", [cmd, "missing.h5"], "missing.h5")
      for cmd in ("info", "analyze")],
    ("data", "task function with NaN labels", ["train", "--task", "badtask:nan_labels", "--steps", "2", "-q",
                                               "--out", "d.h5"], None),
    ("checkpoints", "resume from checkpoints full of NaN",
     ["train", *TINY, "--steps", "40", "--checkpoint-every", "10", "--out", "ckpt_nan.h5"], None),
    *[("data", f"file task with {kind} data",
       ["train", "--task", "file", "--task-opt", f"path={kind}.npz", "--steps", "2", "-q", "--out", "d.h5"], None)
      for kind in ("complex", "bool", "nan")],
]


def _env(repo: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), str(repo / "tests")])
    return env


def verdict(code: int | None, err: str, changed: bool, argv: list[str]) -> str:
    lines = err.strip().splitlines()
    if code is None:
        return "hang (killed after 60 s)"
    if "Traceback" in err:
        return "traceback"
    if changed:
        return "file changed"
    if code == 2 and len(lines) == 1:
        return "clean"
    if code == 0 and argv[0] == "train" and "ckpt" in argv[-1]:
        said = any("recomputed" in line or "from step 0" in line for line in lines)
        if argv[-1] == "ckpt_past.h5":
            return "clean (restarted, said so)" if said else "accepted silently (nothing run)"
        return "clean (restarted, said so)" if said else "resumed silently"
    if code == 0:
        return "exit 0 (accepted)"
    return f"exit {code}, {len(lines)} lines"


def run(repo: Path) -> list[str]:
    out = []
    template = Path(tempfile.mkdtemp())
    _files(template, repo)
    for klass, case, argv, watched in CASES:
        with tempfile.TemporaryDirectory() as d:
            d = Path(d) / "case"
            shutil.copytree(template, d, symlinks=True)
            before = (d / watched).read_bytes() if watched else None
            try:
                r = subprocess.run([sys.executable, "-m", "landscape", *argv], env=_env(repo), cwd=d, timeout=60,
                                   capture_output=True, text=True)
                code, err = r.returncode, r.stderr
            except subprocess.TimeoutExpired:
                code, err = None, ""
            changed = watched is not None and (d / watched).read_bytes() != before
            out.append(verdict(code, err, changed, argv))
    shutil.rmtree(template)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", action="append", type=Path, help="a checkout to run (repeat for columns)")
    repos = p.parse_args().repo or [Path(__file__).resolve().parent.parent]
    columns = [run(r.resolve()) for r in repos]
    print("| class | case | " + " | ".join(str(r) for r in repos) + " |")
    print("|---|---|" + "---|" * len(repos))
    for i, (klass, case, _, _) in enumerate(CASES):
        print(f"| {klass} | {case} | " + " | ".join(c[i] for c in columns) + " |")
    for r, c in zip(repos, columns):
        print(f"{r}: {sum(v.startswith('clean') for v in c)} of {len(c)} clean")


if __name__ == "__main__":
    main()

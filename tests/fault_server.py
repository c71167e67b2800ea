"""Run a landscape command many times, each time with one fault, without paying torch's import each time.

Usage: ``python fault_server.py SPEC.json RESULT.json``. This process imports
torch and landscape once, then runs every command in a forked child. SPEC
holds ``argv`` (a ``landscape`` command line), ``out`` (the file it writes),
``dir`` (where copies and logs go; not the output's directory, which the server
empties before every run) and ``mode``:

``kill``
    An uninterrupted, traced run counts the calls of each syscall in
    ``KILL_SYSCALLS``; then every ``fsync`` and ``rename`` call and ``samples``
    evenly spaced calls of the others (the first and the last included) are
    each one trial. For a trial the child stops itself, ``strace -p`` attaches
    with ``-e inject=SYSCALL:signal=KILL:when=N`` (the kernel's SIGKILL at that
    real call: no Python cleanup runs), the child continues and dies there,
    and a second child reruns the same command to completion.
``enospc``
    The same, but only the calls on the output's files are counted and faulted
    (``strace -P``: the file, its temporaries, lock and staging files, and
    those of every path in ``watch``), and the fault is the error ENOSPC
    (``-e inject=SYSCALL:error=ENOSPC:when=N``): the call fails as on a full
    disk and the process goes on. Every such call is tried.
``fill``
    A real full disk: the output's directory is a small file system (a tmpfs). After a clean run there, each trial fills it up to ``budget`` free
    bytes with a filler file (``points`` evenly spaced budgets from 0 to 2.2
    times what the clean run added to it, or its largest output file where
    that is more), runs the command, then removes the filler and reruns.

``inputs`` (``[[source, destination], ...]``) are copied into place before every
run's trial (files the command reads or extends). RESULT gets, per trial, the
exit status and stderr of the faulted run and of the rerun, and where copies of
the watched files were put after each (``DIR/trial-I/after``, ``.../rerun``;
the clean run's in ``DIR/clean``).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py  # noqa: F401 -- imported before forking, like everything the commands use
import torch  # noqa: F401

import landscape.commands.write  # noqa: F401
import landscape.figures.of_file  # noqa: F401
import landscape.report  # noqa: F401
import landscape.experiments.scan  # noqa: F401
import landscape.experiments.train  # noqa: F401
from landscape.cli import main


def _warm_matplotlib() -> None:
    """Draw one figure before forking: the children inherit the loaded fonts instead of each reading them."""
    import io

    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    ax.plot([1, 2], [1, 10], label="$w_0$")
    ax.set_yscale("log")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")

KILL_SYSCALLS = ("write", "pwrite64", "fsync", "rename")
ENOSPC_SYSCALLS = ("write", "pwrite64", "fsync", "rename", "ftruncate")


def _traced(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)


def _child(argv: list[str], stderr: str | None) -> int:
    """Fork a child that stops itself, then runs ``landscape ARGV`` and exits with its code."""
    pid = os.fork()
    if pid == 0:
        if stderr is not None:
            fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
        os.kill(os.getpid(), signal.SIGSTOP)
        code = 1
        try:
            code = main(argv)
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.waitpid(pid, os.WUNTRACED)
    return pid


def _near(paths: list[str], pid: int) -> list[str]:
    """Every file a write of ``paths`` touches: each path, its temporary, lock, staging file and record."""
    out = []
    for p in paths:
        p = Path(os.path.realpath(p))
        for name in (p.name, f".{p.name}.new", f".{p.name}.new.from"):
            out += [str(p.with_name(name)), str(p.with_name(f".{name}.tmp-{pid}"))]
        out.append(str(p.with_name(f".{p.name}.lock")))
    return out


def _run(argv: list[str], strace=None, stderr: str | None = None) -> int:
    """Run the command in a child, traced by ``strace(pid)`` (a list of strace arguments) when given."""
    pid = _child(argv, stderr)
    tracer = None
    if strace is not None:
        tracer = subprocess.Popen(["strace", "-qq", "-p", str(pid), *strace(pid)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not _traced(pid) and time.monotonic() < deadline:
            time.sleep(0.002)
    os.kill(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, 0)
    if tracer is not None:
        tracer.wait()
    return status


def _code(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def _count(argv, log: str, syscalls, paths=None) -> dict[str, int]:
    filt = (lambda pid: [a for p in _near(paths, pid) for a in ("-P", p)]) if paths else (lambda pid: [])
    _run(argv, lambda pid: ["-o", log, *filt(pid), "-e", f"trace={','.join(syscalls)}"])
    counts = dict.fromkeys(syscalls, 0)
    with open(log) as f:
        for line in f:
            name = line.split("(", 1)[0].strip()
            if name in counts and "resumed>" not in line:
                counts[name] += 1
    return counts


def plan(counts: dict[str, int], samples: int) -> list[tuple[str, int]]:
    trials = []
    for syscall, c in counts.items():
        if syscall in ("write", "pwrite64", "ftruncate") and c > samples:
            ns = sorted({round(1 + i * (c - 1) / (samples - 1)) for i in range(samples)})
        else:
            ns = range(1, c + 1)
        trials += [(syscall, n) for n in ns]
    return trials


def _place(inputs) -> None:
    for src, dst in inputs:
        shutil.copyfile(src, dst)


def _keep(paths, where: Path) -> list[str]:
    """Copy the watched files that exist to ``where``; their names."""
    where.mkdir(parents=True, exist_ok=True)
    kept = []
    for p in map(Path, paths):
        if p.exists():
            shutil.copyfile(p, where / p.name)
            kept.append(p.name)
    return kept


def _fill(mount: Path, budget: int) -> Path:
    """Fill ``mount`` until ``budget`` bytes are free."""
    st = os.statvfs(mount)
    todo = st.f_bavail * st.f_frsize - budget
    filler = mount / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "wb") as f:
        while todo > 0:
            try:
                todo -= f.write(block[:min(len(block), todo)])
                f.flush()
            except OSError:
                break
    return filler


def _clear(mount: Path) -> None:
    for p in mount.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def main_(spec_path: str, result_path: str) -> None:
    spec = json.load(open(spec_path))
    _warm_matplotlib()
    argv, d, mode = spec["argv"], Path(spec["dir"]), spec["mode"]
    watch = [spec["out"], *spec.get("watch", [])]
    inputs = spec.get("inputs", [])
    result = {"trials": []}
    work = Path(spec["out"]).parent  # the command's own directory (the small file system with ``fill``)
    mount = work if mode == "fill" else None
    _clear(work)
    _place(inputs)
    st = os.statvfs(work)
    before = (st.f_blocks - st.f_bfree) * st.f_frsize
    if mode == "fill":
        # mount: the directory of ``out`` is itself the small file system
        result["clean"] = _code(_run(argv, stderr=str(d / "clean.err")))
        st = os.statvfs(mount)
        added = (st.f_blocks - st.f_bfree) * st.f_frsize - before
        scale = max([added] + [os.path.getsize(p) for p in watch if os.path.exists(p)])  # what a commit needs
        n = spec["points"]
        trials = [("fill", round(i * 2.2 * scale / (n - 1))) for i in range(n)]
        if "draws" in spec:  # the fuzzer's random points: fractions of 2.2 times what the clean run wrote
            trials = [("fill", round(u * 2.2 * scale)) for u, _ in spec["draws"]]
    else:
        syscalls = KILL_SYSCALLS if mode == "kill" else ENOSPC_SYSCALLS
        result["counts"] = _count(argv, str(d / "clean.strace"), syscalls, watch if mode == "enospc" else None)
        trials = plan(result["counts"], spec.get("samples", 10**9))
        if "draws" in spec:  # the fuzzer's random points: (which call, which of its calls), each in [0, 1)
            made = sorted((k, c) for k, c in result["counts"].items() if c)
            trials = [(made[int(u * len(made))][0], 1 + int(v * made[int(u * len(made))][1]))
                      for u, v in spec["draws"]] if made else []
    result["clean_files"] = _keep(watch, d / "clean")
    for i, (syscall, n) in enumerate(trials):
        _clear(work)  # each trial starts from nothing but the inputs
        _place(inputs)
        t = {"syscall": syscall, "n": n, "dir": str(d / f"trial-{i}")}
        err = d / f"trial-{i}.err"
        if mode == "fill":
            filler = _fill(mount, n)
            status = _run(argv, stderr=str(err))
            filler.unlink()
        else:
            inject = "signal=KILL" if mode == "kill" else "error=ENOSPC"
            filt = (lambda pid: [a for p in _near(watch, pid) for a in ("-P", p)]) if mode == "enospc" else \
                (lambda pid: [])
            status = _run(argv, lambda pid: ["-o", "/dev/null", *filt(pid), "-e", f"trace={syscall}",
                                             "-e", f"inject={syscall}:{inject}:when={n}"], stderr=str(err))
        t["killed"] = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        t["code"], t["stderr"] = _code(status), err.read_text(errors="replace")
        t["after"] = _keep(watch, Path(t["dir"]) / "after")
        rerun = d / f"trial-{i}.rerun.err"
        t["rerun"] = _code(_run(argv, stderr=str(rerun)))
        t["rerun_stderr"] = rerun.read_text(errors="replace")
        t["rerun_files"] = _keep(watch, Path(t["dir"]) / "rerun")
        t["leftovers"] = sorted(p.name for p in work.iterdir() if p.name.startswith("."))  # temporaries, locks
        result["trials"].append(t)
    json.dump(result, open(result_path, "w"))


if __name__ == "__main__":
    main_(sys.argv[1], sys.argv[2])

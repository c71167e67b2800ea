"""Kill a landscape command at its N-th call of one system call, many times, without paying torch's import each time.

Usage: ``python fault_server.py SPEC.json RESULT.json``. SPEC holds ``argv`` (a
``landscape`` command line without ``--out``), ``dir`` (where the files go) and
``pwrite_samples``. An uninterrupted, traced run into ``DIR/clean.h5`` counts
the calls of each syscall in ``SYSCALLS``; then every call of ``sendfile``,
``fsync`` and ``rename`` and ``pwrite_samples`` evenly spaced ``pwrite64`` calls
(the first and the last included) are each one trial, into ``DIR/trial-I.h5``.
This process imports torch and landscape once, then runs every command in a
forked child. For a trial the child stops itself, ``strace -p`` attaches with
``-e inject=SYSCALL:signal=KILL:when=N`` (the kernel's SIGKILL at that real
call: no Python cleanup runs), the child continues and dies there, and a second
child reruns the same command on the same ``--out`` to completion. RESULT gets
the syscall counts of the uninterrupted run and, per trial, whether the kill
landed and the exit code of the rerun.
"""

import json
import os
import signal
import subprocess
import sys
import time

import h5py  # noqa: F401 -- imported before forking, like everything the commands use
import torch  # noqa: F401

import landscape.commands  # noqa: F401
import landscape.report  # noqa: F401
import landscape.scan  # noqa: F401
import landscape.train  # noqa: F401
from landscape import store
from landscape.cli import main

SYSCALLS = ("pwrite64", "sendfile", "fsync", "rename")


def _traced(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)


def _child(argv: list[str]) -> int:
    """Fork a child that stops itself, then runs ``landscape ARGV`` and exits with its code."""
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        code = 1
        try:
            code = main(argv)
        finally:
            os._exit(code)
    os.waitpid(pid, os.WUNTRACED)
    return pid


def _run(argv: list[str], strace: list[str]) -> tuple[int, subprocess.Popen | None]:
    pid = _child(argv)
    tracer = None
    if strace:
        tracer = subprocess.Popen(["strace", "-qq", "-p", str(pid), *strace], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not _traced(pid) and time.monotonic() < deadline:
            time.sleep(0.002)
    os.kill(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, 0)
    if tracer is not None:
        tracer.wait()
    return status, tracer


def count(argv: list[str], out: str, log: str) -> dict[str, int]:
    _run([*argv, "--out", out], ["-o", log, "-e", f"trace={','.join(SYSCALLS)}"])
    counts = dict.fromkeys(SYSCALLS, 0)
    with open(log) as f:
        for line in f:
            name = line.split("(", 1)[0].strip()
            if name in counts and "resumed>" not in line:
                counts[name] += 1
    return counts


def plan(counts: dict[str, int], pwrite_samples: int) -> list[tuple[str, int]]:
    trials = []
    for syscall, c in counts.items():
        if syscall == "pwrite64" and c > pwrite_samples:
            ns = sorted({round(1 + i * (c - 1) / (pwrite_samples - 1)) for i in range(pwrite_samples)})
        else:
            ns = range(1, c + 1)
        trials += [(syscall, n) for n in ns]
    return trials


def main_(spec_path: str, result_path: str) -> None:
    spec = json.load(open(spec_path))
    argv, d = spec["argv"], spec["dir"]
    result = {"counts": count(argv, f"{d}/clean.h5", f"{d}/clean.strace"), "trials": []}
    for i, (syscall, n) in enumerate(plan(result["counts"], spec["pwrite_samples"])):
        out = f"{d}/trial-{i}.h5"
        status, _ = _run([*argv, "--out", out], ["-o", "/dev/null", "-e", f"trace={syscall}",
                                                  "-e", f"inject={syscall}:signal=KILL:when={n}"])
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        readable = True
        if os.path.exists(out):  # what the kill left must open as a landscape file
            try:
                store.describe(out), store.read_scan(out), store.read_trajectories(out)
            except Exception:  # noqa: BLE001
                readable = False
        rerun, _ = _run([*argv, "--out", out], [])
        result["trials"].append({"syscall": syscall, "n": n, "out": out, "killed": killed, "readable": readable,
                                 "rerun": os.WEXITSTATUS(rerun) if os.WIFEXITED(rerun) else -1})
    json.dump(result, open(result_path, "w"))


if __name__ == "__main__":
    main_(sys.argv[1], sys.argv[2])

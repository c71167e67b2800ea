"""A real single-node Slurm on localhost, for tests.

    from cluster import slurm_available, slurm_cluster

    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    with slurm_cluster(tmp_path) as slurm:
        array = slurm.sbatch(["--array=0-2"], "#!/bin/sh\\necho $SLURM_ARRAY_TASK_ID\\n")
        merge = slurm.sbatch([f"--dependency=afterok:{array}"], script_path)
        states = slurm.wait([array, merge], timeout=60)

Everything lives in the given directory: slurm.conf, state and spool
directories, pid and log files; each cluster picks free TCP ports, so two
clusters (two test runs) can run side by side. Munge: if a munged already
answers on the default socket it is used; otherwise the cluster starts a
private munged (as the munge user, socket in its own directory under /tmp,
named in slurm.conf's AuthInfo) and stops it again. Daemons are stopped by the
PIDs started here, SIGTERM first, then SIGKILL. Needs root (SlurmUser=root),
Debian's slurmctld, slurmd, slurm-client and munge (see .ci/install-slurm).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munged", "munge", "unmunge")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
# Job states after which a job will not run (again) by itself.
FINAL_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED", "SPECIAL_EXIT",
}


_CLIENT_VARS = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCONTROL_", "SCANCEL_")


class SlurmError(RuntimeError):
    """A cluster that would not start, a failed submission, or a wait that timed out."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def slurm_available() -> tuple[bool, str]:
    """(True, "") when a single-node cluster can be started here, else (False, why not)."""
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        return False, f"Slurm binaries not found: {', '.join(missing)} (install with: bash .ci/install-slurm)"
    if os.name != "posix" or os.geteuid() != 0:
        return False, "the test Slurm cluster runs its daemons as root (SlurmUser=root); not root here"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return False, "no 'munge' user (is the munge package installed?)"
    return True, ""


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"==> {path} (not written)"
    return f"==> {path} (last {min(lines, len(text))} lines)\n" + "\n".join(text[-lines:])


def _munge_ok(socket_path: str | None = None, env: dict | None = None) -> bool:
    s = ["-S", socket_path] if socket_path else []
    try:
        cred = subprocess.run([_which("munge"), "-n", *s], capture_output=True, timeout=10, env=env)
        if cred.returncode != 0:
            return False
        back = subprocess.run([_which("unmunge"), *s], input=cred.stdout, capture_output=True, timeout=10, env=env)
        return back.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process started here, SIGKILL it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _parse_record(line: str) -> dict[str, str]:
    """One line of `scontrol show -o`: Key=Value pairs separated by spaces."""
    rec: dict[str, str] = {}
    key = None
    for tok in line.split():
        k, eq, v = tok.partition("=")
        if eq and k and " " not in k and (k[0].isupper() or k[0] == "_"):
            key = k
            rec[k] = v
        elif key is not None:  # a value with a space in it (Command=, Reason=, ...)
            rec[key] += " " + tok
    return rec


class SlurmCluster:
    """A running single-node cluster; made by `slurm_cluster`, not directly."""

    def __init__(self, root: Path, extra_conf: Sequence[str] = ()):
        self.root = Path(root).resolve()
        self.conf = self.root / "slurm.conf"
        self.extra_conf = list(extra_conf)
        # The submitter's environment (jobs inherit it: --export=ALL) with SLURM_CONF, less
        # Slurm's input variables (SBATCH_PARTITION, ...) and an outer job's SLURM_* ones.
        self.env: dict[str, str] = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_VARS)}
        self.env["SLURM_CONF"] = str(self.conf)
        self.node = ""
        self.ctld_port = self.slurmd_port = 0
        self.logs = [self.root / "slurmctld.log", self.root / "slurmd.log",
                     self.root / "slurmctld.out", self.root / "slurmd.out"]
        self._procs: dict[str, subprocess.Popen] = {}
        self._munge_dir: Path | None = None
        self._short_spool: Path | None = None
        self.spool = self.root / "spool"

    # ---- client commands -------------------------------------------------

    def run(self, args: Sequence[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a Slurm client command (`["squeue", ...]`) against this cluster; text output."""
        args = [str(a) for a in args]
        exe = _which(args[0]) or args[0]
        kw.setdefault("env", self.env)
        p = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise SlurmError(f"{' '.join(args)} failed (exit {p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
        return p

    def sbatch(self, args: Sequence[str], script: str | os.PathLike, cwd: str | os.PathLike | None = None,
               env: dict[str, str] | None = None) -> str:
        """Submit a batch script (a path, or the script's text) with extra sbatch `args`; the job id.

        `cwd` (default: the cluster directory) is where the job runs and where
        slurm-%j.out lands; `env` adds variables to the submitter's environment,
        which the job inherits (--export=ALL is sbatch's default).
        """
        cmd = ["sbatch", "--parsable", *[str(a) for a in args]]
        text = None
        if isinstance(script, os.PathLike) or ("\n" not in script and Path(script).is_file()):
            cmd.append(str(Path(script).resolve()))
        else:
            text = script
        e = dict(self.env, **(env or {}))
        p = self.run(cmd, input=text, cwd=str(cwd or self.root), env=e)
        job = p.stdout.strip().split(";")[0]
        if not job.isdigit():
            raise SlurmError(f"sbatch printed no job id: {p.stdout!r} {p.stderr!r}")
        return job

    def jobs(self, job_ids: Iterable[str] | str) -> dict[str, dict[str, str]]:
        """`scontrol show job` records, keyed "JOBID" or "ARRAYJOBID_TASKID" for array tasks.

        A finished job's record stays for MinJobAge (300 s here). Array tasks not yet
        started share one record, keyed like "12_1-2"."""
        if isinstance(job_ids, str):
            job_ids = [job_ids]
        out: dict[str, dict[str, str]] = {}
        for jid in job_ids:
            p = self.run(["scontrol", "show", "-o", "job", str(jid)], check=False)
            for line in p.stdout.splitlines():
                if not line.strip():
                    continue
                rec = _parse_record(line)
                if "ArrayTaskId" in rec and "ArrayJobId" in rec:
                    key = f"{rec['ArrayJobId']}_{rec['ArrayTaskId']}"
                else:
                    key = rec.get("JobId", str(jid))
                out[key] = rec
        return out

    def states(self, job_ids: Iterable[str] | str) -> dict[str, str]:
        """Current state ("PENDING", "RUNNING", "COMPLETED", ...) of each job and array task."""
        return {k: r.get("JobState", "UNKNOWN") for k, r in self.jobs(job_ids).items()}

    def wait(self, job_ids: Iterable[str] | str, timeout: float = 120, poll: float = 0.25) -> dict[str, str]:
        """Poll until no listed job (array: any task) is queued or running; then their final states.

        Raises SlurmError naming the jobs still active (and the node state) on timeout.
        """
        ids = [job_ids] if isinstance(job_ids, str) else [str(j) for j in job_ids]
        deadline = time.monotonic() + timeout
        while True:
            # -t all: with an explicit state filter finished jobs are listed too, and a
            # purged id does not make squeue fail; we look at the states ourselves.
            p = self.run(["squeue", "-h", "-t", "all", f"--jobs={','.join(ids)}", "-o", "%i %T"], check=False)
            active = []
            if p.returncode == 0:
                active = [ln for ln in p.stdout.splitlines() if ln.split() and ln.split()[-1] not in FINAL_STATES]
            else:
                active = [f"(squeue failed: {p.stderr.strip()})"]
            if not active:
                break
            if time.monotonic() > deadline:
                raise SlurmError(f"jobs still active after {timeout} s: {'; '.join(active)}\n{self.describe()}")
            self.check_alive()
            time.sleep(poll)
        return self.states(ids)

    def output(self, job_id: str, task: int | None = None) -> str:
        """The StdOut file of a job (or array task), read back; '' if missing."""
        key = f"{job_id}_{task}" if task is not None else str(job_id)
        rec = self.jobs(job_id).get(key, {})
        path = rec.get("StdOut")
        try:
            return Path(path).read_text() if path else ""
        except OSError:
            return ""

    def describe(self) -> str:
        """Node state and the tails of the daemon logs, for error messages."""
        parts = []
        p = self.run(["sinfo", "-N", "-o", "%N %T %E"], check=False, timeout=10)
        parts.append("sinfo: " + (p.stdout.strip() or p.stderr.strip()))
        parts += [_tail(f) for f in self.logs if f.exists()]
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Raise SlurmError (with the logs) if a daemon started here has exited."""
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise SlurmError(f"{name} exited with {proc.returncode}\n" + "\n".join(_tail(f) for f in self.logs))

    # ---- start and stop ---------------------------------------------------

    def _start_munge(self) -> str:
        """'' when the system munged answers; else the socket of a private munged started here."""
        if _munge_ok():
            return ""
        # Private daemon: the socket's directory must be reachable (o+x) by everyone
        # and owned by munge, so not inside a pytest tmp dir (0700, root).
        mu = pwd.getpwnam("munge")
        self._munge_dir = Path(tempfile.mkdtemp(prefix="munge-", dir="/tmp"))
        os.chown(self._munge_dir, mu.pw_uid, mu.pw_gid)
        os.chmod(self._munge_dir, 0o711)
        sock = str(self._munge_dir / "socket")
        out = open(self.root / "munged.out", "wb")
        self.logs.append(self.root / "munged.out")
        self._procs["munged"] = subprocess.Popen(
            [_which("munged"), "-F", f"--socket={sock}", f"--pid-file={self._munge_dir}/munged.pid",
             f"--seed-file={self._munge_dir}/munged.seed", f"--log-file={self._munge_dir}/munged.log"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            user=mu.pw_uid, group=mu.pw_gid, extra_groups=[],
        )
        out.close()
        deadline = time.monotonic() + 10
        while not _munge_ok(sock):
            if self._procs["munged"].poll() is not None or time.monotonic() > deadline:
                raise SlurmError("munged did not start: `munge -n | unmunge` fails\n" + _tail(self.root / "munged.out"))
            time.sleep(0.05)
        return sock

    def _node_line(self) -> str:
        # The node as slurmd sees it: declaring more CPUs or memory than exist drains it.
        p = self.run(["slurmd", "-C"], env=self.env)
        line = p.stdout.splitlines()[0].strip()
        if not line.startswith("NodeName="):
            raise SlurmError(f"unexpected `slurmd -C` output: {p.stdout!r}")
        self.node = line.split()[0].partition("=")[2]
        keep = ("NodeName=", "CPUs=", "Boards=", "SocketsPerBoard=", "CoresPerSocket=", "ThreadsPerCore=", "RealMemory=")
        return " ".join(t for t in line.split() if t.startswith(keep))

    def _write_conf(self, munge_socket: str) -> None:
        r = self.root
        for d in ("state", "spool"):  # fresh: a saved drained node would survive restarts
            shutil.rmtree(r / d, ignore_errors=True)
            (r / d).mkdir(parents=True)
        self.ctld_port, self.slurmd_port = _free_ports(2)
        node = self._node_line()
        # slurmstepd binds unix sockets "<spool>/<node>_<job>.<step>" (108 bytes at most)
        self.spool = r / "spool"
        if len(f"{self.spool}/{self.node}_4294967295.4294967295") >= 100:
            self._short_spool = Path(tempfile.mkdtemp(prefix="slurmd-", dir="/tmp"))
            self.spool = self._short_spool
        lines = [
            f"ClusterName=test{self.ctld_port}",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            *([f"AuthInfo=socket={munge_socket}"] if munge_socket else []),
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={self.spool}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
            "ReturnToService=2",
            "MinJobAge=300",
            "KillWait=5",
            "InactiveLimit=0",
            node + " NodeAddr=localhost State=UNKNOWN",  # reachable even if the hostname does not resolve
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        for extra in self.extra_conf:  # replaces the line with the same key, else is appended
            key = extra.split("=", 1)[0].strip().lower()
            lines = [ln for ln in lines if ln.split("=", 1)[0].strip().lower() != key] + [extra]
        self.conf.write_text("\n".join(lines) + "\n")

    def _start_daemon(self, name: str) -> None:
        out = open(self.root / f"{name}.out", "wb")
        self._procs[name] = subprocess.Popen(
            [_which(name), "-D"], env=self.env, cwd=str(self.root), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()

    def start(self, timeout: float = 60) -> None:
        """Start munge (if needed), slurmctld and slurmd; return once the node is idle."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_conf(self._start_munge())
        self._start_daemon("slurmctld")
        self._start_daemon("slurmd")
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            self.check_alive()
            p = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False, timeout=10)
            state = p.stdout.strip() if p.returncode == 0 else f"(sinfo: {p.stderr.strip()})"
            if state == "idle":
                return
            if time.monotonic() > deadline:
                raise SlurmError(f"Slurm node not idle after {timeout} s (state: {state})\n{self.describe()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop slurmd, slurmctld and a private munged by PID."""
        ctld = self._procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            with contextlib.suppress(Exception):
                p = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10)
                ids = sorted(set(p.stdout.split()))
                if ids:
                    self.run(["scancel", *ids], check=False, timeout=10)
                    end = time.monotonic() + 10  # let slurmd kill the job steps
                    while time.monotonic() < end:
                        q = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10)
                        if q.returncode != 0 or not q.stdout.strip():
                            break
                        time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            _stop(self._procs.get(name))
        for d in (self._munge_dir, self._short_spool):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self._munge_dir = self._short_spool = None


@contextlib.contextmanager
def slurm_cluster(tmp_dir: str | os.PathLike, timeout: float = 60,
                  extra_conf: Sequence[str] = ()) -> Iterator[SlurmCluster]:
    """Start a single-node cluster in `tmp_dir` (a fresh directory), yield it, stop it on exit.

    `extra_conf`: slurm.conf lines that replace the line with the same key
    ("MinJobAge=600", "PartitionName=batch Nodes=ALL Default=YES") or are added.
    """
    ok, reason = slurm_available()
    if not ok:
        raise SlurmError(reason)
    cluster = SlurmCluster(Path(tmp_dir), extra_conf)
    try:
        cluster.start(timeout)
        yield cluster
    finally:
        cluster.stop()

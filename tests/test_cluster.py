"""The test Slurm cluster itself: a job array plus a job chained with afterok."""

import time

import pytest

from cluster import slurm_available, slurm_cluster

pytestmark = pytest.mark.slurm

TASK = """#!/bin/bash
#SBATCH --job-name=cluster-array
#SBATCH --ntasks=1 --cpus-per-task=1
#SBATCH --output=task-%a.log
set -euo pipefail
sleep 1
python3 -c '
import os, time
v = [os.environ[k] for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "CLUSTER_TEST_TOKEN")]
with open("out/task-%s.txt" % v[0], "w") as f:
    f.write(" ".join(v) + " %.6f\\n" % time.time())
'
"""

MERGE = """#!/bin/bash
#SBATCH --job-name=cluster-merge
#SBATCH --output=merge.log
set -euo pipefail
python3 -c 'import time; print("%.6f" % time.time())' > out/merge-start.txt
cat out/task-0.txt out/task-1.txt out/task-2.txt > out/merged.txt
"""


def test_array_then_afterok(tmp_path):
    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    with slurm_cluster(tmp_path / "slurm") as slurm:
        env = {"CLUSTER_TEST_TOKEN": "inherited", "PATH": slurm.env["PATH"]}
        array = slurm.sbatch(["--array=0-2"], TASK, cwd=work, env=env)
        merge = slurm.sbatch([f"--dependency=afterok:{array}", "--kill-on-invalid-dep=yes"], MERGE, cwd=work, env=env)
        # While the array runs (each task sleeps 1 s), the merge waits on its dependency.
        assert slurm.jobs(merge)[merge]["JobState"] == "PENDING"
        assert slurm.jobs(merge)[merge]["Reason"] == "Dependency"

        states = slurm.wait([array, merge], timeout=90)
        logs = {p.name: p.read_text() for p in work.glob("*.log")}
        assert states == {f"{array}_{i}": "COMPLETED" for i in range(3)} | {merge: "COMPLETED"}, (states, logs)

        records = slurm.jobs([array, merge])
        assert all(r["ExitCode"] == "0:0" for r in records.values()), records

    lines = (work / "out" / "merged.txt").read_text().splitlines()
    assert [ln.split()[:4] for ln in lines] == [[str(i), "0", "3", "inherited"] for i in range(3)]
    # The merge started after every task had written its file (wall clock, and Slurm's record).
    merge_start = float((work / "out" / "merge-start.txt").read_text())
    assert merge_start > max(float(ln.split()[4]) for ln in lines)
    task_end = max(records[f"{array}_{i}"]["EndTime"] for i in range(3))  # ISO times sort as text
    assert records[merge]["StartTime"] >= task_end


def test_slurm_available_reason():
    ok, reason = slurm_available()
    assert isinstance(ok, bool) and (ok or "Slurm" in reason or "root" in reason or "munge" in reason)


def test_wait_times_out_with_message(tmp_path):
    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    with slurm_cluster(tmp_path / "slurm") as slurm:
        job = slurm.sbatch([], "#!/bin/sh\nsleep 30\n")
        t = time.monotonic()
        with pytest.raises(Exception, match="still active"):
            slurm.wait(job, timeout=1)
        assert time.monotonic() - t < 10
    # leaving the context cancelled the job and stopped the daemons

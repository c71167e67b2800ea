"""The worked examples run as a user runs them, from a fresh process, and draw their figures."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_notebook_example_runs_and_draws_its_figure(tmp_path, env):
    figure = tmp_path / "notebook.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_scan.py"), str(figure)], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert figure.stat().st_size > 10_000
    assert "test loss is lowest at norm" in r.stdout and "the run: norm" in r.stdout

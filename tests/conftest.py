import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))


@pytest.fixture
def env():
    """Environment for subprocesses: the test task module importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent), e.get("PYTHONPATH", "")])
    return e

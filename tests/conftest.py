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


# The fuzzer's budgets (tests/test_fuzz.py, tests/test_fuzz_files.py): CI runs a fixed number of examples from a
# fixed seed; ``pytest --hypothesis-profile=long`` runs seed after seed for LANDSCAPE_FUZZ_MINUTES.
from hypothesis import HealthCheck, settings  # noqa: E402

_FUZZ = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=60, derandomize=True, **_FUZZ)
settings.register_profile("long", max_examples=500, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

"""A property-based fuzzer (hypothesis): command lines generated from the config registry's own declarations.

Every flag of ``scan``, ``train`` and ``phases`` comes from a declared field (``landscape.config.settings``): its type,
bounds, choices and whether it is a list. Each example leaves most flags at their defaults and gives the others a
value the rule accepts (kept tiny, so a run takes a moment) or one it should refuse (wrong type, past a bound, not
a choice, malformed lists, control characters). The property: the command either runs, leaving a landscape file
every reader opens, or exits 2 with one line on stderr; never a traceback, never another code.

CI runs a fixed budget with a fixed seed (the ``ci`` profile, ``tests/conftest.py``);
``pytest --hypothesis-profile=long tests/test_fuzz.py`` runs batches of new seeds for ``LANDSCAPE_FUZZ_MINUTES``
(default 60) per property. Damaged files are fuzzed in ``tests/test_fuzz_files.py``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
from hypothesis import given, seed, settings, strategies as st

from landscape.config import settings as config
from landscape import store
from landscape.cli import main
from landscape.config.phases import PhasesConfig

COMMANDS = {"scan": config.ScanConfig, "train": config.TrainConfig, "phases": PhasesConfig}
CPUS = len(os.sched_getaffinity(0))

# Fields whose accepted values are not generated from the rule alone: names (a task, metrics, globs, axes) and
# the sizes a tiny run should keep (a value the rule accepts but that takes minutes is no use to a fuzzer).
TINY = {
    "task": st.just("tasks_for_tests:tiny"),
    "norms": st.sampled_from(["1", "0.5:2:3", "0.5,1.5", "0.3:3:2:log", "0.*=0.5,1"]),
    "device": st.just("cpu"),
    "compile": st.sampled_from(["auto", "off"]),  # on: a trial compilation of seconds
    "constrain": st.sampled_from(["*", "0.*"]),
    "group": st.sampled_from(["*", "0.*"]),
    "metrics": st.sampled_from(["norm", "norm,probe_r2"]),
    "from_trajectory": st.just("wd0_init1_seed0"),
    "x": st.sampled_from(["lr=0.003,0.03", "weight-decay=0:1:2"]),
    "y": st.sampled_from(["weight-decay=0,1", "init-scale=1,2"]),
    "curvature": st.integers(1, 3),  # with a --lanczos of at least K, so that the pair is accepted
    "lanczos": st.integers(3, 5),
    "steps": st.integers(1, 4),
    "restarts": st.integers(1, 2),
    "history": st.integers(0, 3),
    "log_points": st.integers(1, 5),
    "checkpoint_every": st.integers(1, 3),
    "chunk": st.integers(1, 3),
    "batch_size": st.integers(1, 16),
    "threads": st.integers(1, CPUS),
    "gap": st.integers(0, 5),
    "betas": st.sampled_from(["0.9,0.98", "0.5,0.999", "0,0"]),
}
TEXT = {"task", "norms", "device", "compile", "constrain", "group", "metrics", "from_trajectory", "x", "y", "betas"}
BAD_TEXT = ["", " ", "abc", "-1", "-0", "0", "1.5", "nan", "inf", "-inf", "1e400", "1e-400", "0x10", "9" * 25,
            "-" + "9" * 25, ",", "1,,2", ",1", "1,", "1;2", "a=b", "*=1", "lr=", "=1", ":", "1:2:3:4:5", "\t\n",
            "é", "1_000", "NaN,1", "1e18", "9223372036854775808", "cuda:99", "../x", "%s", "{}"]
BAD = st.one_of(st.sampled_from(BAD_TEXT), st.text(st.characters(blacklist_categories=("Cs",),
                                                                  blacklist_characters="\x00"), max_size=6))


def _scalar(rule: config.Rule) -> st.SearchStrategy:
    if rule.choices is not None:
        return st.sampled_from(list(rule.choices))
    if rule.kind is int:
        low = rule.minimum if rule.minimum is not None else 0
        return st.integers(low, low + 3)
    if rule.kind is float:
        low = 0.0 if rule.nonnegative else 1e-3
        return st.floats(low, 1.0, allow_nan=False).map(lambda v: float(f"{v:.4g}"))
    return st.sampled_from(["x"])


def accepted(cls, name: str) -> st.SearchStrategy:
    """Text for flag ``name`` that its rule accepts (tiny where a size is concerned)."""
    rule = config.rule(cls, name)
    if name in TEXT:
        return TINY[name]
    one = TINY.get(name, _scalar(rule))
    if rule.listed:
        return st.lists(one, min_size=1, max_size=2, unique=True).map(lambda vs: ",".join(map(str, vs)))
    return one.map(str)


def _flags(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if "rule" in f.metadata]


@st.composite
def command_lines(draw) -> list[str]:
    """``[command, --flag, value, ...]``: each declared flag left out, given an accepted value, or a bad one."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    cls = COMMANDS[command]
    argv = [command, "--quiet"]
    names = _flags(cls)
    n_bad = draw(st.sampled_from([0, 0, 1, 1, 2]))  # about half the examples are meant to run
    bad = draw(st.lists(st.sampled_from(names), min_size=n_bad, max_size=n_bad, unique=True))
    for name in names:
        rule = config.rule(cls, name)
        mode = "bad" if name in bad else "good" if name == "task" else draw(st.sampled_from(["omit"] * 5 + ["good"] * 2))
        if mode == "omit":
            continue
        flag = "--" + name.replace("_", "-")
        if rule.kind is bool:
            argv += [flag] if mode == "good" else [flag, draw(BAD)]
            continue
        argv += [flag, draw(accepted(cls, name) if mode == "good" else BAD)]
    if "--steps" not in argv:  # the defaults (1000, 10000 steps) are real runs, not a fuzzer's
        argv += ["--steps", "2"]
    return argv


def _check(argv: list[str], capsys) -> None:
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "f.h5"
        capsys.readouterr()
        try:
            code = main([*argv, "--out", str(out)])
        finally:
            torch.set_num_threads(threads)  # --threads is process-wide
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        assert code in (0, 2), (code, err)
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("landscape"), err
        else:
            store.describe(out)  # what it wrote is a landscape file


def _budgeted(prop):
    """Run ``prop`` (a hypothesis test) once under the active profile; under ``long``, batch after batch with new
    seeds until ``LANDSCAPE_FUZZ_MINUTES`` have passed."""
    long = settings.default.max_examples == settings.get_profile("long").max_examples
    deadline = time.monotonic() + 60 * float(os.environ.get("LANDSCAPE_FUZZ_MINUTES", "60"))
    batch = 0
    while True:
        seed(batch)(prop)() if long else prop()
        batch += 1
        if not long or time.monotonic() > deadline:
            return


def test_every_generated_command_line_runs_or_is_one_line_and_exit_2(capsys):
    count = [0]

    @given(command_lines())
    def prop(argv):
        count[0] += 1
        _check(argv, capsys)

    _budgeted(prop)
    print(f"fuzzed {count[0]} command lines")


def test_the_fuzzer_generates_both_runs_and_refusals(capsys):
    """Not a fuzzer that only ever hits the parser: among a fixed sample, some runs finish and some are refused
    after parsing (by the config's cross-field checks or the task), not only by argparse."""
    seen = {"ran": 0, "refused": 0}

    @settings(max_examples=60, database=None, derandomize=True)  # (30 held 1-2 runs once --curvature was added)
    @given(command_lines())
    def prop(argv):
        with tempfile.TemporaryDirectory() as d:
            capsys.readouterr()
            code = main([*argv, "--out", str(Path(d) / "f.h5")])
            seen["ran" if code == 0 else "refused"] += 1

    threads = torch.get_num_threads()
    try:
        prop()
    finally:
        torch.set_num_threads(threads)
    assert seen["ran"] >= 3 and seen["refused"] >= 3, seen

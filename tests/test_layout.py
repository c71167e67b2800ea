"""The architecture as the imports show it: every arrow points down, and no module grows past its concept."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "landscape"

# Level of each module (a package counts for all its files); imports must point to a lower level.
LEVELS = {
    "version": 0, "plain": 0, "registry": 0, "status": 0, "state": 0, "grid": 0, "memory": 0, "transitions": 0,
    "phase_rule": 0,
    "config": 1, "tasks": 1, "sphere": 1, "holds": 1,
    "optim": 2, "mlp": 2, "store": 2, "report": 2, "phases_config": 2,
    "ensemble": 3, "fused": 3, "landscape_plot": 3, "labelled": 3, "cluster": 3, "hysteresis": 3, "plane": 3,
    "loop": 4, "whole": 4, "metrics": 4, "training_plot": 4, "plane_plot": 4,
    "scanner": 5, "trainer": 5, "analysis": 5, "phases_plot": 5,
    "branches": 6, "figures": 6, "phase_diagram": 6,
    "commands": 7, "readers": 7,
    "phases_run": 8,
    "api": 9,
    "cli": 10, "landscape": 11, "__main__": 12,
}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "landscape"


def _imports(path: Path) -> set[str]:
    """The top-level landscape modules that ``path`` imports (relative or absolute, anywhere in the file)."""
    here = path.relative_to(PACKAGE).parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(here[:len(here) - node.level + 1]) + (node.module.split(".") if node.module else [])
                if parts:
                    out.add(parts[0])
                else:  # from . import a, b: modules, or attributes of the package itself
                    out.update(a.name if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                               else "landscape" for a in node.names)
            elif node.module and node.module.split(".")[0] == "landscape":
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("landscape."))
    return out


def _late(path: Path) -> set[str]:
    """Modules named by ``Registry("landscape.X", ...)``: registries looked up only when a value is checked."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Registry" and node.args \
                and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("landscape."):
            out.add(node.args[0].value.split(".")[1])
    return out


LATE = {"config": {"ensemble", "optim"}}  # config checks --engine and --method against their owners' registries

FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_level():
    assert {_module(p) for p in FILES} <= set(LEVELS)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_imports_point_down(path):
    me = _module(path)
    for other in _imports(path) - {me}:
        assert other in LEVELS, f"{path.name} imports unknown module {other}"
        assert LEVELS[other] < LEVELS[me] or (other, me) == ("landscape", "landscape"), \
            f"{path.relative_to(PACKAGE)} ({me}, level {LEVELS[me]}) imports {other} (level {LEVELS[other]})"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_late_lookups_are_only_the_declared_ones(path):
    assert _late(path) <= LATE.get(_module(path), set()), path.name


def test_store_knows_nothing_of_the_computations():
    for path in (PACKAGE / "store").glob("*.py"):
        assert not _imports(path) & {"scanner", "trainer", "loop", "ensemble", "metrics", "commands", "cli"}, path.name


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_modules_stay_small(path):
    if path.name == "analysis.py":
        return  # the analysis is one concept with many small estimators
    assert len(path.read_text().splitlines()) <= 420, path.name

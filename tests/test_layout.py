"""The architecture as the imports show it: every arrow points down, and no module grows past its concept."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "landscape"

# The layers: a folder of the package is one unit (its modules may import each other), a top-level module another;
# every import must point to a unit on a lower level. Folders say in their __init__.py what they own.
LEVELS = {
    "version": 0, "plain": 0, "errors": 0, "status": 0,   # the base: values, errors, statuses
    "config": 1, "tasks": 1,                               # settings declared once; problems and the task contract
    "store": 2, "engine": 2, "analysis": 2,                # the file format; batched models and steps; pure analysis
    "metrics": 3, "report": 3, "cluster": 3,               # order parameters; terminal text; shards and Slurm
    "figures": 4,                                          # one module per figure family
    "experiments": 5,                                      # settings -> stored results with the engine
    "commands": 6,                                         # what each command does with validated settings
    "api": 7, "cli": 8, "landscape": 9, "__main__": 10,    # the Python API, the command line, the package's face
}
FOLDERS = {"config", "tasks", "store", "engine", "analysis", "metrics", "report", "figures", "experiments", "commands"}


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


LATE = {"config": {"engine", "config"}}  # --engine, --method and --schedule checked against their owners' registries

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


def test_every_folder_says_what_it_owns_and_may_import():
    for folder in FOLDERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
        assert "May import" in doc, folder
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == FOLDERS


def test_store_knows_nothing_of_the_computations():
    for path in (PACKAGE / "store").glob("*.py"):
        assert not _imports(path) & {"engine", "experiments", "metrics", "commands", "cli"}, path.name


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PACKAGE)) for p in FILES])
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 420, path.name

"""The documentation's Python: every ``python`` code block of the README and the docs parses, and every call of the
API (``ls.scan(...)``, ``ls.train(...)``, ...) in it names a function that exists with settings it accepts, their
literal values validated by the same rules as the flags (the command lines are checked in ``test_api.py``). The
site's link checker finds a broken link and passes a sound page."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from doc_pages import code_blocks, pages

import landscape as ls
from landscape import api
from landscape.config.phases import PhasesConfig
from landscape.config.settings import ScanConfig, TrainConfig

ROOT = Path(__file__).parent.parent
CONFIGS = {"scan": ScanConfig, "train": TrainConfig, "phases": PhasesConfig}


BLOCKS = code_blocks(("python", "py", "{code-cell} python"))


def _api_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of ``ls.NAME(...)`` or ``landscape.NAME(...)``."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id in ("ls", "landscape")]


def test_the_documentation_has_python_to_check():
    assert len(BLOCKS) >= 5
    assert sum(len(_api_calls(ast.parse(code))) for _, code in BLOCKS) >= 10


@pytest.mark.parametrize("where, code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_python_snippet_parses_and_calls_the_api_as_it_is(where, code):
    tree = ast.parse(code, where)
    for call in _api_calls(tree):
        name = call.func.attr
        assert hasattr(ls, name), f"{where}: ls.{name} does not exist"
        target = getattr(ls, name)
        if not callable(target) or isinstance(target, type):
            continue
        params = inspect.signature(target).parameters
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        takes_settings = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if name in CONFIGS:
            settings = {k: v for k, v in keywords.items() if k not in params}
            literal = {}
            for k, v in settings.items():
                try:
                    literal[k] = ast.literal_eval(v)
                except ValueError:
                    literal[k] = None  # a variable: its name is checked, not its value
            task = ast.literal_eval(call.args[0]) if call.args and isinstance(call.args[0], ast.Constant) else None
            known = set(api.config_mod.field_names(CONFIGS[name])) - {"task", "task_options"}
            assert set(settings) <= known, f"{where}: ls.{name} has no setting {sorted(set(settings) - known)}"
            values = {k: v for k, v in literal.items() if v is not None}
            api._settings(CONFIGS[name], task or "teacher-student", None, None, values)  # raises for a bad value
        else:
            unknown = set(keywords) - set(params)
            assert not unknown or takes_settings, f"{where}: ls.{name} takes no {sorted(unknown)}"


def test_the_link_checker_finds_a_broken_link_and_passes_a_sound_page(tmp_path):
    site = tmp_path / "html"
    site.mkdir()
    (site / "index.html").write_text('<a href="guide.html#scan">guide</a> <img src="missing.png"> '
                                     '<a href="https://example.org/">out</a>')
    (site / "guide.html").write_text('<h1 id="scan">Scan</h1><a href="index.html">home</a>')
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "check_links.py"), str(site)], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "missing.png" in r.stderr and "guide.html" not in r.stderr
    assert "1 external links not fetched" in r.stdout
    (site / "guide.html").write_text('<h1 id="other">Scan</h1>')
    (site / "index.html").write_text('<a href="guide.html#scan">guide</a>')
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "check_links.py"), str(site)], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "no id 'scan'" in r.stderr
    (site / "index.html").write_text('<a href="guide.html#other">guide</a>')
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "check_links.py"), str(site)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def _figures():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import figures
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return figures


FIGURES = _figures()
GUIDE_RECIPES = [r for r in FIGURES.RECIPES if not r.commands[0].startswith("python ")]  # examples: test_examples


def test_every_figure_of_the_guide_has_a_recipe_and_every_recipe_a_figure():
    shown = {p.name for p in (ROOT / "docs").glob("*.png")}
    assert shown == set(FIGURES.BY_FIGURE)
    text = "\n".join(p.read_text() for p in pages())
    for figure in FIGURES.BY_FIGURE:
        assert f"({figure})" in text or f"(docs/{figure})" in text, f"{figure} is shown on no page"


@pytest.mark.parametrize("recipe", GUIDE_RECIPES, ids=[next(iter(r.made)) for r in GUIDE_RECIPES])
def test_the_guides_figures_are_made_by_the_guides_commands(recipe, tmp_path, monkeypatch):
    """Each recipe's commands are the guide's own (they parse as documented commands do) and, on tiny settings,
    write the files that become the figures."""
    from landscape import cli

    text = "\n".join(p.read_text() for p in pages())
    for command in recipe.commands:
        assert " ".join(command.split()) in " ".join(text.replace("\\\n", " ").split()), \
            f"{command!r} is not a command the guide shows"
        cli.build_parser().parse_args(FIGURES._argv(command, {})[1:])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    written = FIGURES.make(recipe, tmp_path, tiny=True)
    assert [p.name for p in written] == list(recipe.made)
    assert all(p.stat().st_size > 10_000 for p in written)

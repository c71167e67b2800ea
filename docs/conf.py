"""Sphinx configuration: the user guide (MyST Markdown), the API reference (autodoc) and the gallery, built from
``examples/`` and executed at every build (sphinx-gallery), so each figure on the site comes from code that runs.

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``.
"""

import os
import sys
import tempfile
from pathlib import Path

import landscape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))  # the examples import each other's helpers as a user's scripts would
os.environ.setdefault("MPLBACKEND", "Agg")

project = "landscape"
author = "the landscape developers"
release = version = landscape.__version__
copyright = "2026, the landscape developers"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx.ext.viewcode",
              "sphinx_gallery.gen_gallery"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5", "sg_execution_times.rst"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "config.cache"]  # sphinx-gallery's conf holds a function (reset_argv)

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": False}

html_theme = "pydata_sphinx_theme"
html_title = f"landscape {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []


_FIGURES = tempfile.mkdtemp(prefix="landscape-gallery-")


def _argv(gallery_conf, script_vars):
    """Each example writes its figure file into a scratch folder (its open figures are what the page shows)."""
    return [os.path.join(_FIGURES, Path(script_vars["src_file"]).stem + ".png")]


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",  # every example runs at every build
    "ignore_pattern": r"__init__\.py",
    "reset_argv": _argv,
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
}

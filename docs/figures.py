"""The guide's figures, made by the commands the guide shows: each figure in ``docs/`` is the output of one recipe
below, run in a scratch folder and copied here, so a figure on the site is what those commands draw today.

    python docs/figures.py                  # every figure (the phase diagrams take tens of minutes on 2 cores)
    python docs/figures.py scan.png two-norms.png
    python docs/figures.py --tiny --out DIR # every recipe on tiny settings, into DIR (what tests/test_docs.py runs)

A recipe is the command lines of the guide, then the file that becomes the figure. ``--tiny`` appends a few flags to
each command (fewer steps, fewer points) so the whole chain runs in seconds: the same commands, the same figure
files, not the same pictures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


@dataclass(frozen=True)
class Recipe:
    commands: tuple[str, ...]  # as the guide writes them ("landscape ..." or "python ...")
    made: dict[str, str]  # figure in docs/ -> the file the commands write
    tiny: dict[str, str] = field(default_factory=dict)  # command prefix -> flags appended with --tiny


_SCAN_TINY = "--steps 20 --norms 0.3:3:4:log --restarts 1"
RECIPES = [
    Recipe(("landscape scan --out scan.h5", "landscape plot scan.h5 -o scan.png"), {"scan.png": "scan.png"},
           {"landscape scan": _SCAN_TINY}),
    Recipe(("landscape scan --out example.h5",
            "landscape train --config data/teacher-student-grokking.toml --out example.h5",
            "landscape plot example.h5 -o example.png"),
           {"example.png": "example.png", "example-grokking.png": "example-grokking.png"},
           {"landscape scan": _SCAN_TINY, "landscape train": "--steps 40 --log-every 10"}),
    Recipe(("landscape train --task modular --init-scale 1 --weight-decay 2,3,5 --steps 3000 --out sweep.h5",
            "landscape scan --task modular --out sweep.h5", "landscape analyze sweep.h5",
            "landscape plot sweep.h5"),
           {"order-parameters.png": "sweep-grokking.png", "order-norm.png": "sweep-order.png"},
           {"landscape train": "--steps 40 --log-every 10", "landscape scan": _SCAN_TINY}),
    Recipe(("landscape scan --out hy.h5", "landscape scan --branch both --out hy.h5", "landscape analyze hy.h5",
            "landscape plot hy.h5"), {"hysteresis.png": "hy.png"}, {"landscape scan": _SCAN_TINY}),
    Recipe(("landscape scan --task modular --norms 0.2:5:13:log --steps 500 --out hym.h5",
            "landscape scan --task modular --norms 0.2:5:13:log --steps 500 --branch both --out hym.h5",
            "landscape analyze hym.h5", "landscape plot hym.h5"), {"hysteresis-modular.png": "hym.png"},
           {"landscape scan": _SCAN_TINY}),
    Recipe(("landscape scan --task modular --norms 'embed*=0.1:3:9:log' --norms '*=0.3:10:9:log' --out plane.h5",
            "landscape train --task modular --init-scale 1,3 --weight-decay 2 --steps 6000 --out plane.h5",
            "landscape analyze plane.h5", "landscape plot plane.h5"), {"two-norms.png": "plane.png"},
           {"landscape scan": "--steps 10 --restarts 1", "landscape train": "--steps 40 --log-every 10"}),
    Recipe(("landscape train --task modular --init-scale 8 --weight-decay 0.1 --steps 3000 --out removing.h5",
            "landscape train --task modular --fix-norm --init-scale 0.6 --steps 3000 --out removing.h5",
            "landscape plot removing.h5 -o removing.png"), {"removing-fixnorm.png": "removing-fixnorm.png"},
           {"landscape train": "--steps 40 --log-every 10"}),
    Recipe(("landscape train --config data/modular-transformer-grokking.toml --out nanda.h5",
            "landscape plot nanda.h5"), {"nanda-order-parameters.png": "nanda.png"},
           {"landscape train": "--steps 20 --log-every 10"}),
    Recipe(("landscape phases --config data/modular-phases.toml --out phases.h5",),
           {"phases.png": "phases-phases.png"},
           {"landscape phases": "--x lr=1e-3,1e-2 --y weight-decay=0,1 --steps 30 --log-every 10"}),
    Recipe(("landscape phases --config data/modular-phases-frac.toml --out phases-frac.h5",),
           {"phases-frac.png": "phases-frac-phases.png"},
           {"landscape phases": "--x train-frac=0.3,0.6 --y weight-decay=0,1 --steps 30 --log-every 10"}),
    Recipe(("python examples/notebook_scan.py notebook-scan.png",), {"notebook-scan.png": "notebook-scan.png"}),
    Recipe(("landscape train --config data/addition-train-size.toml --out addition.h5", "landscape analyze addition.h5",
            "landscape plot addition.h5"), {"effective-theory.png": "addition-effective.png"},
           {"landscape train": "--steps 40 --log-every 10"}),
    Recipe(("landscape phases --config data/addition-phases.toml --out addition-phases.h5",),
           {"addition-phases.png": "addition-phases-phases.png"},
           {"landscape phases": "--x group-lr=1e-3,1e-2 --y lr=1e-4,1e-3 --steps 30 --log-every 10"}),
    Recipe(("landscape scan --config data/modular.toml --curvature --out curvature.h5",
            "landscape analyze curvature.h5", "landscape plot curvature.h5"), {"curvature.png": "curvature.png"},
           {"landscape scan": _SCAN_TINY}),
]
BY_FIGURE = {figure: r for r in RECIPES for figure in r.made}


def _argv(command: str, tiny: dict[str, str]) -> list[str]:
    argv = shlex.split(command)
    for prefix, extra in tiny.items():
        if command.startswith(prefix + " "):
            argv += shlex.split(extra)
    if argv[0] not in ("landscape", "python"):
        raise ValueError(f"a recipe runs landscape or python, not {argv[0]!r}")
    return argv


def _run(argv: list[str], work: str) -> None:
    """``landscape ...`` in this process (as the API would run it), ``python SCRIPT ...`` as a user runs it."""
    if argv[0] == "python":
        env = dict(os.environ, MPLBACKEND="Agg")
        r = subprocess.run([sys.executable, str(ROOT / argv[1]), *argv[2:]], cwd=work, env=env, capture_output=True,
                           text=True)
        code, err = r.returncode, r.stderr
    else:
        from landscape.cli import main

        here = os.getcwd()
        os.chdir(work)
        try:
            code, err = main(argv[1:]), ""
        except SystemExit as e:
            code, err = e.code, ""
        finally:
            os.chdir(here)
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)}: exit {code}: {err.strip()[-2000:]}")


def make(recipe: Recipe, out: Path, tiny: bool = False) -> list[Path]:
    """Run ``recipe`` in a scratch folder (presets are found from the repository) and copy its figures to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    with tempfile.TemporaryDirectory(prefix="landscape-figure-") as work:
        (Path(work) / "data").symlink_to(ROOT / "data")
        for command in recipe.commands:
            _run(_argv(command, recipe.tiny if tiny else {}), work)
        written = []
        for figure, made in recipe.made.items():
            shutil.copyfile(Path(work) / made, out / figure)
            written.append(out / figure)
        return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Make the guide's figures with the guide's commands.")
    ap.add_argument("figures", nargs="*", help=f"figure names (default: all): {', '.join(BY_FIGURE)}")
    ap.add_argument("--tiny", action="store_true", help="tiny settings: check the recipes run, not the pictures")
    ap.add_argument("--out", type=Path, default=DOCS, help="where the figures go (default: docs/)")
    args = ap.parse_args(argv)
    unknown = [f for f in args.figures if f not in BY_FIGURE]
    if unknown:
        print(f"figures: no recipe for {', '.join(unknown)}; known: {', '.join(BY_FIGURE)}", file=sys.stderr)
        return 2
    recipes = [r for r in RECIPES if not args.figures or set(r.made) & set(args.figures)]
    args.out.mkdir(parents=True, exist_ok=True)
    for recipe in recipes:
        try:
            written = make(recipe, args.out, args.tiny)
        except RuntimeError as e:  # a command of the recipe failed: its own one-line message
            print(f"figures: {' '.join(str(e).split())}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

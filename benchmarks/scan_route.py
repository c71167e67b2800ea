"""The route of a scan's settings through the package: which modules a ``landscape scan`` passes through, from the
command line to the first optimizer step, and how often a call climbs back up the layers.

A module's *floor* is one above the highest floor it imports (read from the code's imports, with modules that import
each other in a loop sharing one floor); a call from a module into one on a higher floor is a *climb back up*
(a callback, or a concept that lives above its user). The route is recorded by running a tiny scan with
``sys.setprofile`` and following every call into the package until the first call into the optimizer's step.

    python benchmarks/scan_route.py            # the table of the route, then rooms, moves and climbs
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path

import landscape

PACKAGE = Path(landscape.__file__).parent
STEPS = {"riemannian_adam_step", "projected_adam_step", "riemannian", "projected"}  # optim's and fused's steps


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, names: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in the file."""
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else [])
            target = base + (node.module.split(".") if node.module else [])
            for a in node.names:
                full = ".".join(target + [a.name])
                out.add(full if full in names else ".".join(target))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in names}


def floors() -> dict[str, int]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: imports(p, set(files)) - {m} for m, p in files.items()}
    # reach[m]: every module m leads to; modules that reach each other share a floor
    reach = {}
    for m in graph:
        seen, todo = set(), [m]
        while todo:
            for n in graph[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        reach[m] = seen
    memo: dict[str, int] = {}

    def floor(m: str) -> int:
        if m not in memo:
            below = [n for n in reach[m] if m not in reach[n]]
            memo[m] = 1 + max((floor(n) for n in below), default=0)
        return memo[m]

    return {m: floor(m) for m in graph}


def route(argv: list[str]) -> list[tuple[str, str, str]]:
    """``(caller module, callee module, callee function)`` of each call from one module of the package into
    another, in order, until the first call of a constrained optimizer step (imports themselves left out)."""
    from landscape.cli import main

    calls: list[tuple[str, str, str]] = []
    root = str(PACKAGE)

    class Done(BaseException):  # passes every `except Exception` on the way out
        pass

    def profile(frame, event, arg):
        code = frame.f_code
        if event != "call" or not code.co_filename.startswith(root) or code.co_name in ("<module>", "__getattr__"):
            return  # imports, and the package's lazy attributes
        caller = frame.f_back
        while caller is not None and not caller.f_code.co_filename.startswith(root):
            caller = caller.f_back
        callee = module_name(Path(code.co_filename))
        if caller is not None and module_name(Path(caller.f_code.co_filename)) != callee:
            calls.append((module_name(Path(caller.f_code.co_filename)), callee, code.co_name))
        if code.co_name in STEPS and callee.rsplit(".", 1)[-1] in ("optim", "fused"):
            raise Done

    sys.setprofile(profile)
    try:
        main(argv)
    except (Done, SystemExit):
        pass
    finally:
        sys.setprofile(None)
    return calls


def main() -> None:
    level = floors()
    with tempfile.TemporaryDirectory() as d:
        calls = route(["scan", "--norms", "1:2:2", "--restarts", "1", "--steps", "2", "--quiet",
                       "--out", str(Path(d) / "s.h5")])
    moves = list(dict.fromkeys((a, b) for a, b, _ in calls))  # each caller -> callee once, in order of first use
    named = {(a, b): fn for a, b, fn in reversed(calls)}
    climbs = [(a, b) for a, b in moves if level[b] > level[a]]
    print(f"{'floors':>7}       caller -> callee :: first function called")
    for a, b in moves:
        print(f"{level[a]:3d}->{level[b]:<3d} {'UP' if (a, b) in climbs else '  '} {a} -> {b} :: {named[a, b]}")
    rooms = {m for move in moves for m in move}
    print(f"\nroute of `landscape scan` to the first constrained optimizer step: {len(rooms)} modules, "
          f"{len(moves)} distinct calls between modules, {len(climbs)} of them climb back up")
    top = [p for p in PACKAGE.iterdir() if p.suffix == ".py"]
    longest = max(PACKAGE.rglob("*.py"), key=lambda p: len(p.read_text().splitlines()))
    print(f"top-level modules: {len(top)}; longest module: {longest.relative_to(PACKAGE.parent)} "
          f"({len(longest.read_text().splitlines())} lines)")


if __name__ == "__main__":
    main()

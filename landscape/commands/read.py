"""The commands that read a finished file: ``plot`` (the figures), ``analyze`` (w_c, the zone, grokking times) and
``info`` (a summary). Each is split into a function that returns the result (what the Python API hands back) and
the command that prints or writes it."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from ..errors import BadInput, bad_input, check_output
from ..plain import to_json


def figures_of(file: str, out: str | None = None, names: str | None = None) -> list:
    """Every figure ``landscape plot`` draws for ``file``, as ``[(Figure, path it is written to)]``; ``out``: the
    first figure's path (default ``file`` with ``.png``), the others beside it; ``names``: a comma list of the
    trajectories to draw."""
    from ..figures import of_file as figures, landscape as plot_mod
    from .. import store
    from ..status import Status

    fig_path = Path(out) if out else Path(file).with_suffix(".png")
    if fig_path.suffix.lower() not in plot_mod.FORMATS:
        raise BadInput(f"-o {fig_path}: figure format must be one of {', '.join(plot_mod.FORMATS)}")
    if not fig_path.parent.is_dir():
        raise BadInput(f"-o {fig_path}: directory {str(fig_path.parent)!r} does not exist")
    with bad_input():
        scan_data = store.read_scan(file)
        branches = list(store.read_branches(file).values())
        trajs = store.read_trajectories(file)
        result = store.read_analysis(file)
        meta = store.series_meta(file)
        grid = store.read_phases(file)
    if grid is not None and names is None:  # a phase diagram's runs are drawn as the diagram, or when named
        trajs = []
    if names is not None:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        if not wanted:
            raise BadInput("--trajectories: give one or more names separated by commas")
        known = [t["name"] for t in trajs]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise BadInput(f"{file}: no trajectory {', '.join(unknown)}; it has: {', '.join(known) or 'none'}")
        trajs = [t for t in trajs if t["name"] in wanted]
    trajs = [t for t in trajs if len(t["step"])]
    if scan_data is not None and not (scan_data["status"] == Status.DONE).any():
        scan_data = None  # nothing finished (all pending or diverged): no curve to draw
    branches = [b for b in branches if (b["status"] == Status.DONE).any()]
    if scan_data is None and branches:  # only continuation branches: the first is the landscape drawn
        scan_data, branches = branches[0], branches[1:]
    if scan_data is None and not trajs and grid is None:
        raise BadInput(f"{file}: holds no finished scan points and no logged trajectories to plot")
    return figures.draw(fig_path, scan_data, branches, trajs, result, meta, grid)


def save_figures(drawn: list, echo: bool = False) -> None:
    """Write the figures of :func:`figures_of` to their paths (``echo``: say so on stdout).

    Every path is checked before the first figure is written (a directory is refused); a write that fails (a full
    disk, a read-only directory) is one line naming the figure (``landscape.figures.landscape.save``)."""
    from ..figures import landscape as plot_mod

    for _, path in drawn:
        check_output(path, "-o")
    for fig, path in drawn:
        plot_mod.save(fig, path)
        if echo:
            print(f"wrote {path}")


def plot(file: str, out: str | None = None, names: str | None = None) -> int:
    """``landscape plot``: write every figure the file supports."""
    save_figures(figures_of(file, out, names), echo=True)
    return 0


def info(file: str, as_json: bool = False) -> int:
    from .. import report, store

    with bad_input():
        desc = store.describe(file)
        scan_data = store.read_scan(file)
        branches = store.read_branches(file)
        trajs = store.read_trajectories(file)
        meta = store.series_meta(file)
        phases = store.read_phases(file)
    if as_json:
        data = {"attrs": desc["attrs"], "groups": desc["groups"], "trajectories": trajs}
        if scan_data is not None:
            data["scan"] = scan_data
        if branches:
            data["branches"] = branches
        print(to_json(data, indent=1, sort_keys=False))
        return 0
    print(report.info_text(file, desc, scan_data, trajs, meta, branches, phases))
    return 0


def analysis_result(file: str, criteria: dict, accuracy: bool | None = None, write: bool = True,
                    show=None) -> tuple[dict, str]:
    """``landscape analyze``'s result for ``file``: ``(the JSON-ready dict, the printed report)``; stored under
    ``/analysis`` with ``write`` (holding the file's writer lock from reading to storing), after ``show(data,
    report)`` has shown it (so a failed write still shows the result)."""
    from .. import store

    with contextlib.ExitStack() as stack:
        if write:  # one writer: nothing may change the file between reading it and storing the result
            with bad_input():
                stack.enter_context(store.writer_lock(file))
        return _analysis(file, store, criteria, accuracy, write, show)


def _analysis(file, store, criteria, accuracy, write, show) -> tuple[dict, str]:
    from .. import analysis, report
    from ..experiments import phases
    from ..status import Status

    with bad_input():
        scan_data = store.read_scan(file)
        branches = store.read_branches(file)
        trajs = store.read_trajectories(file)
    unfinished = scan_data is not None and not (scan_data["status"] == Status.DONE).any()
    if (scan_data is None or unfinished) and not trajs and not branches:
        raise BadInput(f"{file}: holds neither finished scan points nor trajectories to analyze")
    if unfinished:
        print(f"{file}: the scan has no finished points; analyzing the trajectories alone", file=sys.stderr)
        scan_data = None
    crit = analysis.Criteria(**{k: v for k, v in criteria.items() if v is not None}, accuracy=accuracy)
    result = analysis.analyze(scan_data, [t for t in trajs if len(t["step"])], crit, branches)
    data = analysis.to_dict(result)
    with bad_input():
        grid = phases.summary_of(file)  # a phase diagram's shares, boundaries and train-fraction fit, if any
    if grid is not None:
        data["phases"] = json.loads(to_json(grid[0]))
    text = report.analysis_report(result) + (f"\n\n{report.phases_report(*grid)}" if grid else "")
    if show is not None:
        show(data, text)
    if write:
        with bad_input():
            store.write_analysis(file, data)
    return data, text


def analyze(file: str, criteria: dict, accuracy: bool | None = None, as_json: bool = False,
            write: bool = True) -> int:
    """``landscape analyze``: print the result (a report, or JSON with ``as_json``) and store it (``write``)."""
    analysis_result(file, criteria, accuracy, write,
                    show=lambda data, text: print(json.dumps(data, indent=1, allow_nan=False) if as_json else text))
    return 0

"""Tables: the scan's summary, the trajectories' last values, and ``landscape info``."""

from __future__ import annotations

import numpy as np

from ..analysis.curvature import sharpness, stationarity
from ..analysis.landscape import best_restart
from ..status import Status
from .curvature import sharpness_lines, stationarity_lines

MAIN_SERIES = ("constrained_norm", "train_loss", "test_loss", "train_acc", "test_acc")  # trajectory table columns


def summary_table(s: dict) -> str:
    """alpha, w, train loss, test loss, accuracies and status per norm (best restart); a two-norm grid has
    one row per cell, with each group's alpha and w."""
    best = best_restart(s)
    axes = ("_1", "_2") if "plane" in s else ("",)
    head = " ".join(f"{'alpha' + a:>8}" for a in axes) + " " + " ".join(f"{'w' + a:>9}" for a in axes)
    head += f" {'train loss':>11} {'test loss':>11}"
    if s["classification"]:
        head += f" {'train acc':>9} {'test acc':>9}"
    lines = [head + "  status"]
    for k in range(len(s["alpha"])):
        r = best[k] if best[k] >= 0 else 0
        alpha, norm = np.atleast_1d(s["alpha"][k]), np.atleast_1d(s["norm"][k])
        row = " ".join(f"{a:8.4g}" for a in alpha) + " " + " ".join(f"{w:9.4g}" for w in norm)
        row += f" {s['train_loss'][k, r]:11.4e} {s['test_loss'][k, r]:11.4e}"
        if s["classification"]:
            row += f" {s['train_acc'][k, r]:9.4f} {s['test_acc'][k, r]:9.4f}"
        statuses = [Status(int(v)).label for v in s["status"][k]]
        status = statuses[0] if len(set(statuses)) == 1 else ",".join(statuses)
        lines.append(f"{row}  {status}")
    if s["status"].shape[1] > 1:
        lines.append("(best restart by train loss per norm)")
    return "\n".join(lines)


def _acc(value) -> str:
    return f"{value:9.4f}" if np.isfinite(value) else f"{'-':>9}"


def _last(t: dict, key: str) -> float:
    values = t.get(key)
    return float(values[-1]) if values is not None and len(values) else float("nan")


def _name_width(trajs: list[dict]) -> int:
    return max([28, *(len(t["name"]) for t in trajs)])


def trajectory_table(trajs: list[dict], names: list[str] | None = None) -> str:
    """One line per trajectory: hyperparameters (lr and training share too where they vary) and the last logged
    metrics."""
    trajs = [t for t in trajs if names is None or t["name"] in names]
    width = _name_width(trajs)
    varying = [(key, label) for key, label in (("lr", "lr"), ("train_frac", "frac"))
               if len({t.get(key) for t in trajs}) > 1]
    head = (f"{'trajectory':<{width}} " + "".join(f"{label:>9} " for _, label in varying)
            + f"{'wd':>7} {'init':>6} {'seed':>4} {'step':>8} {'norm':>9} "
            f"{'train loss':>11} {'test loss':>11} {'train acc':>9} {'test acc':>9}  status")
    lines = [head]
    for t in trajs:
        last = {k: _last(t, k) for k in MAIN_SERIES}
        step = int(t["step"][-1]) if len(t["step"]) else 0
        lines.append(f"{t['name']:<{width}} " + "".join(f"{t[key]:9.3g} " for key, _ in varying)
                     + f"{t['weight_decay']:7.3g} {t['init_scale']:6.3g} {t['seed']:4d} "
                     f"{step:8d} {last['constrained_norm']:9.4g} {last['train_loss']:11.4e} "
                     f"{last['test_loss']:11.4e} {_acc(last['train_acc'])} {_acc(last['test_acc'])}  {t['status']}")
    return "\n".join(lines)


def other_series(trajs: list[dict]) -> list[str]:
    """Every logged series beyond the trajectory table's columns, in file order."""
    seen: dict[str, None] = {}
    for t in trajs:
        for key in t.get("series", ()):
            if key not in MAIN_SERIES:
                seen.setdefault(key)
    return list(seen)


def metrics_table(trajs: list[dict], meta: dict[str, tuple[str, str]]) -> str:
    """The other logged metrics: what each one is, then their last values per trajectory."""
    keys = other_series(trajs)
    if not keys:
        return ""
    lines = ["logged series beyond the table above:"]
    lines += [f"  {k:<20} {meta.get(k, ('', ''))[1]}" + (f" [{meta[k][0]}]" if meta.get(k, ('', ''))[0] else "")
              for k in keys]
    width, names = max(10, *(len(k) for k in keys)), _name_width(trajs)
    lines.append(f"{'trajectory':<{names}} " + " ".join(f"{k:>{width}}" for k in keys))
    for t in trajs:
        lines.append(f"{t['name']:<{names}} " + " ".join(f"{_last(t, k):>{width}.4g}" for k in keys))
    return "\n".join(lines)


def phases_line(p: dict) -> str:
    """``landscape info``'s line on a file's phase diagram (``store.read_phases``): its grid and phase counts."""
    codes = np.asarray(p["phase"])
    counts = ", ".join(f"{name} {int((codes == i).sum())}" for i, name in enumerate(p["phases"]))
    unfinished = int((codes < 0).sum())
    return (f"phases: {p['x_axis']} ({len(p['x'])} values) x {p['y_axis']} ({len(p['y'])} values) x "
            f"{len(p['seed'])} seed(s), {p.get('steps', '?')} steps; t_train: {p.get('t_train_criterion', '?')}, "
            f"t_test: {p.get('t_test_criterion', '?')}; runs: {counts}" + (f", {unfinished} unfinished" if unfinished else "")
            + " (landscape analyze prints the diagram)")


def info_text(path, desc: dict, scan: dict | None, trajs: list[dict], meta: dict[str, tuple[str, str]],
              branches: dict[str, dict] | None = None, phases: dict | None = None) -> str:
    """``landscape info``: the file's origin, the scan's settings and table, the continuation branches' tables,
    the phase diagram's grid, the trajectories' tables."""
    a = desc["attrs"]
    lines = [f"{path}: {a.get('format')} format v{a.get('format_version')}, written by landscape "
             f"{a.get('landscape_version')} (torch {a.get('torch_version')}) on {a.get('created')}",
             f"task: {a.get('task')} {a.get('task_options')}"]
    if scan is None:
        lines.append("scan: none")
    else:
        cfg = scan["config"]
        counts = {s.label: int((scan["status"] == s).sum()) for s in (Status.DONE, Status.DIVERGED, Status.PENDING)}
        K, R = scan["status"].shape
        grid = f"{K} norms"
        if "plane" in scan:
            p = scan["plane"]
            grid = "two-norm grid " + " x ".join(
                f"{n} norms of {grp['glob']!r} ({', '.join(grp['parameters'])}; w0 {w0:.6g})"
                for n, grp, w0 in zip(p["shape"], p["groups"], scan["w0"]))
        w0 = "" if "plane" in scan else f", w0 = {scan['w0']:.6g}"
        lines.append(f"scan: {grid} x {R} restarts{w0}, {scan['method_label']}, "
                     f"{cfg['steps']} steps, lr {cfg['lr']}, batch {cfg['batch_size'] or 'full'}, seed {cfg['seed']}")
        lines.append("points: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
        lines.append(summary_table(scan))
        lines += stationarity_lines(stationarity(scan)) + sharpness_lines(sharpness(scan, best_restart(scan)))
    for name, b in (branches or {}).items():
        K, R = b["status"].shape
        done = int((b["status"] == Status.DONE).sum())
        start = b["config"].get("from_trajectory")
        lines.append(f"{name} branch: {K} norms x {R} restarts, {b['config']['steps']} steps per norm, "
                     f"{done} of {K * R} points done" + (f", started from trajectory {start}" if start else ""))
        lines.append(summary_table(b))
        if "curvature" in b:  # (the first-order line alone is the scan's: a branch shows its own with curvature)
            lines += ["  " + line for line in stationarity_lines(stationarity(b))]
    if phases is not None:
        lines.append(phases_line(phases))
    if not trajs:
        lines.append("trajectories: none")
    else:
        cfg = trajs[0]["config"]
        fixed = sum(bool(t.get("fix_norm", False)) for t in trajs)
        kinds = ("AdamW" if not fixed else "norm fixed" if fixed == len(trajs) else
                 f"{len(trajs) - fixed} AdamW, {fixed} norm fixed")
        lines.append(f"trajectories: {len(trajs)} ({kinds}; first: lr {cfg['lr']}, {cfg['steps']} steps, "
                     f"batch {cfg['batch_size'] or 'full'}); last logged values:")
        lines.append(trajectory_table(trajs))
        extra = metrics_table(trajs, meta)
        if extra:
            lines.append(extra)
    return "\n".join(lines)

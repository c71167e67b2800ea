"""``landscape analyze``'s report and ``landscape phases``' diagram, as text."""

from __future__ import annotations

import math

import numpy as np

from .curvature import sharpness_lines, stationarity_lines

def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _w(x: float | None, w0: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if not w0 or not math.isfinite(w0) else f"{x:.4g} ({x / w0:.3g} w0)"


def _interval(e, w0: float | None = None) -> str:
    if e.value is None:
        return f"none: {e.reason}"
    lo = "-inf" if e.low is None else _w(e.low, None)
    hi = "+inf" if e.high is None else _w(e.high, None)
    text = f"{_w(e.value, w0)}  [{lo}, {hi}]"
    return text + (f"  ({e.note})" if e.note else "")


def _steps(e) -> str:
    return "-" if e.value is None else f"{e.value:.0f}"


def _ratio(p) -> str:
    """A prediction's measured / predicted ratio; ``>R`` where the run never grokked (a bound only)."""
    if p.ratio is not None:
        return f"{p.ratio:.2f}"
    return "-" if p.ratio_low is None else f">{p.ratio_low:.2f}"


def _transition(tr) -> str:
    """One order parameter's transition, lead and forecast, in words."""
    if tr.step is None:
        return f"{tr.series}: no transition ({tr.reason})"
    text = (f"{tr.series} {_fmt(tr.early)} -> {_fmt(tr.late)}, half-way at step {tr.step:.0f} "
            f"(10-90%: {_fmt(tr.start)}-{_fmt(tr.end)})")
    if tr.lead is not None:
        text += f", {abs(tr.lead):.0f} steps {'before' if tr.lead >= 0 else 'after'} grokking"
    if tr.forecast is not None:
        text += f"; forecast {tr.forecast:.0f}" + (f" (x{tr.forecast_ratio:.2f} the measured step)"
                                                   if tr.forecast_ratio is not None else "")
    elif tr.reason:
        text += f"; no forecast: {tr.reason}"
    return text


def hysteresis_line(gap) -> str:
    """One line: where two scans (the independent one, the down or up branch) differ, and by how much."""
    head = f"hysteresis {gap.first} vs {gap.second}: "
    if gap.reason:
        return head + gap.reason
    test = ("test losses differ by more than x{:g} at {} norms, {:.4g} .. {:.4g}".format(
        gap.factor, gap.test_differ_at, *gap.test_range) if gap.test_range else
        f"test losses within x{gap.factor:g} at every norm")
    train = (f"; train losses beyond x{gap.factor:g} over {gap.train_range[0]:.4g} .. {gap.train_range[1]:.4g}"
             if gap.train_range else "")
    ratios = [r for r in gap.test_ratio if r is not None]
    extreme = max(ratios, key=lambda r: abs(math.log(r))) if ratios else None
    worst = f"; largest test-loss ratio {extreme:.3g}" if extreme is not None else ""
    return head + test + train + worst + f"; area between the log test losses over log norm {gap.area:.3g}"


def plane_lines(pa) -> list[str]:
    """The two-norm landscape's part of the report: best cell, each group's test-loss profile, the verdict."""
    g1, g2 = pa.groups
    lines = [f"two-norm landscape: group 1 {g1!r} x group 2 {g2!r}, {pa.shape[0]} x {pa.shape[1]} cells"]
    if not pa.best:
        return lines + [f"  {pa.verdict}"]
    b, z = pa.best, pa.zone
    acc = f", test acc {b['test_acc']:.3f}" if np.isfinite(b["test_acc"]) else ""
    lines.append(f"  lowest test loss   {b['test_loss']:.4g} at w_1 = {b['norm_1']:.4g} (alpha {b['alpha_1']:.3g}), "
                 f"w_2 = {b['norm_2']:.4g} (alpha {b['alpha_2']:.3g}); train loss {b['train_loss']:.3g}{acc}")
    lines.append(f"  Goldilocks cells   {z['cells']} of {z['of']} within {pa.factor:g} x the minimum: "
                 f"w_1 {z['norm_1'][0]:.4g} .. {z['norm_1'][1]:.4g}, w_2 {z['norm_2'][0]:.4g} .. {z['norm_2'][1]:.4g}")
    for g, pr in enumerate(pa.profiles):
        span = "-" if pr.test_decades is None else f"{pr.test_decades:.2f}"
        lines.append(f"  group {g + 1} profile    lowest test loss over the other group's norms spans {span} decades "
                     f"({', '.join(f'{v:.3g}' for v in pr.test_min)})")
    lines.append(f"  {pa.verdict}")
    lines += [f"  note: {n}" for n in pa.notes]
    return lines


def analysis_report(analysis) -> str:
    """A readable plain-text report: the landscape, one row per trajectory, the sweep slopes, and messages."""
    lines = []
    s = analysis.scan
    w0 = s.w0 if s is not None else None
    if s is not None:
        z = s.zone
        lines += [f"landscape ({s.task}, w0 = {s.w0:.4g}; norms are L2 norms of the constrained parameters)",
                  f"  knee criterion      {s.criterion}",
                  f"  critical norm w_c   {_interval(s.w_c, w0)}",
                  f"  test minimum w*     {_interval(s.w_star, w0)}"]
        if z.reason:
            lines.append(f"  Goldilocks zone     none: {z.reason}")
        else:
            lines.append(f"  Goldilocks zone     {z.criterion}: {_w(z.low.value, w0)} .. {_w(z.high.value, w0)}")
            lines.append(f"    lower edge        {_interval(z.low)}")
            lines.append(f"    upper edge        {_interval(z.high)}")
        lines += [f"  note: {n}" for n in s.notes]
    lines += stationarity_lines(getattr(analysis, "stationarity", None))
    lines += sharpness_lines(getattr(analysis, "sharpness", None))
    d = getattr(analysis, "down", None)
    if d is not None:
        w0d = d.w0
        lines.append(f"down branch: critical norm {_interval(d.w_c, w0d)}; test minimum {_interval(d.w_star, w0d)}")
        if d.zone.reason:
            lines.append(f"  Goldilocks zone on the down branch: none: {d.zone.reason}")
        else:
            lines.append(f"  Goldilocks zone on the down branch: {d.zone.criterion}: "
                         f"{_w(d.zone.low.value, w0d)} .. {_w(d.zone.high.value, w0d)}")
    for gap in getattr(analysis, "hysteresis", ()):
        lines.append(hysteresis_line(gap))
    if getattr(analysis, "plane", None) is not None:
        lines += plane_lines(analysis.plane)
    if analysis.trajectories:
        lines.append("")
        down = getattr(analysis, "down", None) is not None
        lines.append(f"{'trajectory':<28} {'wd':>7} {'mem step':>9} {'w_mem':>8} {'grok step':>9} {'w_grok':>8} "
                     f"{'delay':>7} {'pred w_c':>9} {'ratio':>6} {'pred w*':>8} {'ratio':>6} "
                     f"{'pred zone':>9} {'ratio':>6}" + (f" {'pred down':>9} {'ratio':>6}" if down else "")
                     + f" {'pred run':>9} {'ratio':>6}")
        for r in analysis.trajectories:
            row = (f"{r.name:<28} {r.weight_decay:7.3g} {_steps(r.memorization.step):>9} "
                   f"{_fmt(r.memorization.norm):>8} {_steps(r.grokking.step):>9} {_fmt(r.grokking.norm):>8} "
                   f"{_steps(r.delay):>7}")
            for p in r.predictions:
                if p.target == "zone_high_down" and not down:
                    continue
                width = 9 if p.target != "w_star" else 8
                row += f" {_steps(p.step):>{width}} {_ratio(p):>6}"
            lines.append(row)
        bound = any(p.ratio_low is not None for r in analysis.trajectories for p in r.predictions)
        lines.append("pred X: memorization step + ln(w_mem / X) / -ln(1 - lr wd) (with a warm-up or cosine schedule, "
                     "-ln(1 - lr wd) summed step by step); ratio = measured / predicted grokking step; run: the "
                     "norm where the landscape's test loss, scaled to the run's own at memorization, meets the "
                     "grokking criterion"
                     + (" (>R: the run never grokked, the ratio exceeds R = last step / predicted: a bound only)"
                        if bound else ""))
        for r in analysis.trajectories:
            why = [f"memorization: {r.memorization.step.reason}" if r.memorization.step.reason else None,
                   f"grokking: {r.grokking.step.reason}" if r.grokking.step.reason else None,
                   r.delay.note, *r.notes]
            shown = [p for p in r.predictions if down or p.target != "zone_high_down"]
            reasons = [p.reason for p in shown if p.reason]
            if len(reasons) == len(shown) and len(set(reasons)) == 1:
                why.append(f"no prediction: {reasons[0]}")
            else:
                why += [f"prediction to {p.target}: {p.reason}" for p in shown if p.reason]
            why += [f"prediction to {p.target} not confirmed: {p.ratio_reason}" for p in shown if p.ratio_reason]
            why += [f"prediction to {p.target}: {p.premise}" for p in shown if p.premise]
            lines += [f"  {r.name}: {w}" for w in why if w]
        for r in analysis.trajectories:
            for tr in r.transitions:
                lines.append(f"  {r.name}: {_transition(tr)}")
        crit = analysis.trajectories[0]
        lines.append(f"memorization: {crit.memorization.criterion}; grokking: {crit.grokking.criterion}")
    for f in analysis.sweeps:
        lines.append("")
        label = (f"pooled over {f.group['pooled']} sweeps (shared slope)" if "pooled" in f.group else
                 f"sweep init {_fmt(f.group['init_scale'])}, seed {f.group['seed']}, lr {f.group['lr']:g}")
        if f.slope is None:
            lines.append(f"{label}: no slope: {f.reason}")
        else:
            err = "no error (2 points)" if f.stderr is None else f"+- {f.stderr:.3f}"
            pred = ", ".join(f"{k} {v:.3f}" for k, v in f.predicted_slopes.items() if v is not None)
            lines.append(f"{label}: d log(grokking step) / d log(wd) = {f.slope:.3f} {err} "
                         f"over wd {', '.join(f'{w:g}' for w in f.weight_decays)} (mechanism: -1"
                         + (f"; predicted for these runs: {pred})" if pred else ")"))
        lines += [f"  excluded {n}: {why}" for n, why in f.excluded.items()]
    for sweep in getattr(analysis, "effective", ()):
        lines += ["", *effective_lines(sweep)]
    if analysis.messages:
        lines.append("")
        lines += analysis.messages
    return "\n".join(lines).lstrip("\n")


def effective_lines(sw) -> list[str]:
    """Liu et al.'s effective theory against one sweep (``analysis.effective.Sweep``)."""
    from ..analysis.effective import MEASURES
    lam = f"lambda_{sw.index}"
    lines = [f"effective theory (Liu et al. 2022), {sw.key}: step = c / {lam}, c fitted leaving each run out",
             f"  {'trajectory':<34} {'frac':>6} {'n':>5} {'null':>5} {lam:>10} {'ideal':>5}"
             + "".join(f" {head:>9} {'predicted':>9} {'ratio':>6}" for head in ("grok step", "rqi step"))]
    for r in sorted(sw.rows, key=lambda r: (r.train_frac, r.name)):
        null = "-" if r.null is None else f"{r.null[0]}/{r.null[1]}"
        row = (f"  {r.name:<34} {r.train_frac:6.3g} {r.examples if r.examples is not None else '-':>5} {null:>5} "
               f"{_fmt(r.lam) if r.lam else 'below':>10} {_fmt(r.ideal_test_acc):>5}")
        for m in ("grokking", "rqi"):  # the network's steps (the effective dynamics' own: the summary line)
            row += f" {_fmt(r.measured[m]):>9} {_fmt(r.predicted[m]):>9} {_fmt(r.ratio[m]):>6}"
        lines.append(row)
    for m, words in MEASURES.items():
        f = sw.fits[m]
        slope = (f"no slope (fewer than 3 runs reached it at two or more values of {lam})" if f.slope is None else
                 f"d log(step) / d log({lam}) = {f.slope:.3f} +- {f.slope_se:.3f} (theory: -1)")
        worst = "" if f.worst_ratio is None else f"; worst leave-one-out ratio x{f.worst_ratio:.2f}"
        lines.append(f"  {words}: {slope}{worst} over {len(f.names)} runs")
    crit = "none" if sw.critical_fraction is None else f"{'<= ' * all(r.lam for r in sw.rows)}{sw.critical_fraction:g}"
    grok = "none" if sw.smallest_grokking_fraction is None else f"{sw.smallest_grokking_fraction:g}"
    lines.append(f"  critical fraction from {lam}: {crit}; smallest share at which a run grokked: {grok}; "
                 "n: training examples; null: zero eigenvalues / the structure's; 'below': below the critical "
                 "fraction, no prediction; ideal: the test accuracy a determined structure allows (test sums some "
                 "training example has)")
    return lines


PHASE_LETTERS = {"comprehension": "C", "grokking": "G", "memorization": "M", "confusion": "x"}


def phases_report(summary, d) -> str:
    """The phase diagram as text: the seeds' majority phase per cell (rows: y from the largest value down,
    columns: x), the share of each phase, the grokking/comprehension boundaries and the train-fraction fit."""
    names = d.phase_names
    codes = d.majority()
    lines = [f"phase diagram: {d.x.name} (columns) x {d.y.name} (rows), {len(d.seeds)} seed(s), {d.steps} steps; "
             f"t_train: {d.criteria[0] or '-'}; t_test: {d.criteria[1] or '-'}; grokking when t_test - t_train > "
             f"{d.rule.gap} steps"]
    width = max(6, *(len(f"{v:.3g}") for v in d.x.values))
    lines.append(f"{d.y.name:>12} | " + " ".join(f"{v:>{width}.3g}" for v in d.x.values))
    for j in reversed(range(len(d.y.values))):
        cells = [PHASE_LETTERS[names[c]] if c >= 0 else "." for c in codes[:, j]]
        lines.append(f"{d.y.values[j]:>12.3g} | " + " ".join(f"{c:>{width}}" for c in cells))
    lines.append("   " + ", ".join(f"{letter} {name}" for name, letter in PHASE_LETTERS.items()) + ", . unfinished")
    shares = ", ".join(f"{name} {summary.fractions[name]:.0%}" for name in names)
    lines.append(f"shares of the {summary.cells - summary.unfinished} finished runs: {shares}"
                 + (f" ({summary.unfinished} unfinished)" if summary.unfinished else ""))
    for b in summary.boundaries:
        other = d.y.name if b.along == d.x.name else d.x.name
        if b.at:
            where = "; ".join(f"{other} {v:.3g}: {b.along} " + ", ".join(f"{c:.3g}" for c in cs) for v, cs in b.at)
            lines.append(f"grokking/comprehension boundary along {b.along}: {where}")
        else:
            lines.append(f"grokking/comprehension boundary along {b.along}: none (no adjacent grokking and "
                         "comprehension cells)")
    if summary.frac_fit is not None:
        for value, slope, r2, n in summary.frac_fit.fits:
            head = f"ln t_test against train fraction at {summary.frac_fit.other} {value:.3g}"
            lines.append(f"{head}: slope {slope:.3g} (r^2 {r2:.2f}, {n} cells)" if slope is not None
                         else f"{head}: fewer than two cells generalized")
    if getattr(d, "lam", None) is not None:
        lines.append(effective_row(d))
    return "\n".join(lines)


def effective_row(d) -> str:
    """The effective theory's lambda of each value of the diagram's train-frac axis (or of its one training set)."""
    lam = d.lam
    along = "x" if d.x.name == "train-frac" else "y" if d.y.name == "train-frac" else None
    values = (lam[:, 0], d.x.values) if along == "x" else (lam[0, :], d.y.values) if along == "y" else (lam[:1, 0],
                                                                                                      (None,))
    shown = ", ".join((f"{v:g}: " if v is not None else "") + (f"{x:.4g}" if np.isfinite(x) and x > 0 else "below")
                      for x, v in zip(*values))
    return (f"effective theory (Liu et al. 2022), the smallest non-trivial eigenvalue of "
            + (f"each training set by train-frac: {shown} ('below': below the critical fraction); `landscape "
               "analyze` fits the grokking step against it" if along else f"the training set: {shown}"))

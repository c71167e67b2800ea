"""The seed study of the exact Nanda et al. preset: when each seed memorizes and generalizes (issue 30).

    landscape train --config data/nanda-2023.toml --seeds 0,1,2,3,4 --steps 14000 --log-every 50 --out nanda5.h5
    python benchmarks/nanda_seeds.py nanda5.h5 [--saved low_precision_mod_addition.pth] [--against RUN.pth]
    python benchmarks/nanda_seeds.py k0.h5 k1.h5 k2.h5 k3.h5 k4.h5     # one run a file, split and init seed k

For every trajectory of FILE: the first logged step with train loss <= 0.1, test loss <= 1, <= 0.1 and <= 0.01,
the test-loss peak and its step, and the five key frequencies of the token embedding at the last logged step;
then the median and range over the seeds, beside the paper's phase boundaries (about 1.4k, 9.4k and 14k steps).
``--saved``: a run the paper's repository saved (``saved_runs/*.pth``, read with torch), measured the same way
from its loss lists. Prints a Markdown table (the docs' fidelity page holds its output).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from landscape import store

THRESHOLDS = (("train_loss", 0.1), ("test_loss", 1.0), ("test_loss", 0.1), ("test_loss", 0.01))
PAPER = "paper (Nanda et al. 2023): memorization to about 1.4k, circuit formation to 9.4k, cleanup to 14k"


def first(steps: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(values <= threshold)
    return int(steps[hit[0]]) if hit.size else None


def row(steps, train, test, keys=None, train_steps=None) -> list:
    """The thresholds' steps (train loss read at ``train_steps`` when its log is denser), the peak (value,
    step), the key frequencies."""
    train_steps = steps if train_steps is None else train_steps
    found = [first(train_steps, train, thr) if name == "train_loss" else first(steps, test, thr)
             for name, thr in THRESHOLDS]
    found = [f"> {int(steps[-1])}" if v is None else v for v in found]  # not reached by the last logged step
    peak = int(np.nanargmax(test))
    return [*found, (float(test[peak]), int(steps[peak])), keys if keys is not None else "-"]


def saved(path: str) -> list:
    import torch

    run = torch.load(path, map_location="cpu", weights_only=False)
    train = np.array([float(v) for v in run["train_losses"]])
    test = np.array([float(v) for v in run["test_losses"]])
    every = round(len(train) / len(test))  # their test losses are kept every `every` steps, the train losses every step
    return row(np.arange(len(test)) * every, train, test, train_steps=np.arange(len(train)))


def against(path: str, t: dict) -> None:
    """Train and test loss of trajectory ``t`` beside the saved run's at the steps both logged."""
    import torch

    run = torch.load(path, map_location="cpu", weights_only=False)
    train = np.array([float(v) for v in run["train_losses"]])
    test = np.array([float(v) for v in run["test_losses"]])
    every = round(len(train) / len(test))
    print(f"\n| step | train loss | saved | relative | test loss | saved | relative |\n|---|---|---|---|---|---|---|")
    marks = [s for s in (0, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000,
                         10000, 12000, 14000)]
    for s, a, b in zip(t["step"], t["train_loss"], t["test_loss"]):
        s = int(s)
        if s in marks and s < len(train) and s % every == 0 and np.isfinite(a):
            ta, tb = train[s], test[s // every]
            print(f"| {s} | {a:.7g} | {ta:.7g} | {a / ta - 1:+.1e} | {b:.7g} | {tb:.7g} | {b / tb - 1:+.1e} |")


def r_last(rows: dict) -> str:
    """The last logged step, as a not-reached cell states it."""
    return next((v[2:] for r in rows.values() for v in r if isinstance(v, str) and v.startswith("> ")), "?")


def _cell(v) -> str:
    if v is None:
        return "never"
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        return f"{v[0]:.1f} at {v[1]}"
    if isinstance(v, list):
        return ", ".join(str(int(k)) for k in v)
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="+", help="one or more files (one run each with their seed convention)")
    ap.add_argument("--saved", action="append", default=[], metavar="RUN.pth")
    ap.add_argument("--against", metavar="RUN.pth", help="compare the first trajectory step by step with a saved run")
    args = ap.parse_args()
    rows = {}
    for path in args.file:
        for t in store.read_trajectories(path):
            if len(t["step"]) == 0:
                continue  # nothing logged yet
            keys = [t[f"key_frequency/{r}"][-1] for r in range(1, 6)] if "key_frequency/1" in t else None
            split = (t.get("config") or {}).get("task_options", {}).get("seed", 0)
            name = f"seed {t['seed']}" + (f", split {split}" if len(args.file) > 1 else "")
            rows[name] = row(t["step"], t["train_loss"], t["test_loss"], keys)
    header = ["run", "train <= 0.1", "test <= 1", "test <= 0.1", "test <= 0.01", "test-loss peak", "key frequencies"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(_cell(v) for v in r) + " |")
    if len(rows) > 1:
        cells = []
        for k in range(len(THRESHOLDS)):
            got = [r[k] for r in rows.values() if not isinstance(r[k], str)]
            if len(got) == len(rows):
                cells.append(f"{statistics.median(got):g} ({min(got)}-{max(got)})")
            elif 2 * len(got) > len(rows):  # the others lie beyond the last step: the median is still known
                ranked = sorted(got) + [float("inf")] * (len(rows) - len(got))
                cells.append(f"{statistics.median_low(ranked):g} ({min(got)}-{r_last(rows)}+; "
                             f"{len(got)} of {len(rows)} reach it)")
            else:
                cells.append(f"{len(got)} of {len(rows)} reach it")
        peaks = [r[4][0] for r in rows.values()]
        cells.append(f"{statistics.median(peaks):.1f} ({min(peaks):.1f}-{max(peaks):.1f})")
        print("| median (range) | " + " | ".join(cells) + " | |")
    for path in args.saved:
        print(f"| saved run {path.rsplit('/', 1)[-1]} | " + " | ".join(_cell(v) for v in saved(path)) + " |")
    print(f"\n{PAPER}")
    if args.against:
        against(args.against, next(t for t in store.read_trajectories(args.file[0]) if len(t["step"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``/analysis``: the result of ``landscape analyze``, dropped whenever new results arrive."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .durable import commit
from .format import damaged_as_error, drop_analysis, open_file, to_json


def write_analysis(path: str | Path, result: dict[str, Any]) -> None:
    """Store ``landscape analyze`` results under ``/analysis`` (replacing earlier ones).

    The full result is the JSON attribute ``result``; the headline numbers are also
    plain attributes (NaN where there is no answer, with the reason in ``<name>_reason``)
    for readers without JSON.
    """
    def num(x):
        return float("nan") if x is None else float(x)

    with commit(path) as f:
        drop_analysis(f)
        g = f.create_group("analysis")
        g.attrs["description"] = ("critical norm w_c (knee of the train-loss L), test-minimizing norm w_star, "
                                  "Goldilocks zone, and per trajectory the memorization and grokking steps with "
                                  "the steps AdamW's decoupled decay needs to shrink the norm to each target; "
                                  "norms are L2 norms of the constrained parameters")
        g.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        g.attrs["result"] = to_json(result)
        scan = result.get("scan") or {}
        for key in ("w_c", "w_star"):
            est = scan.get(key) or {}
            g.attrs[key] = np.array([num(est.get("value")), num(est.get("low")), num(est.get("high"))])
        zone = scan.get("zone") or {}
        g.attrs["goldilocks_zone"] = np.array([num((zone.get("low") or {}).get("value")),
                                               num((zone.get("high") or {}).get("value"))])
        for key, est in (("w_c", scan.get("w_c")), ("w_star", scan.get("w_star")), ("goldilocks_zone", zone)):
            if (est or {}).get("reason"):
                g.attrs[f"{key}_reason"] = est["reason"]
        if zone.get("criterion"):
            g.attrs["goldilocks_zone_criterion"] = zone["criterion"]
        g.attrs["estimate_layout"] = ("w_c, w_star: [value, low, high]; goldilocks_zone: [low edge, high edge] of the "
                                      "norms meeting goldilocks_zone_criterion; NaN where there is no answer, and "
                                      "<name>_reason says why")
        trajs = result.get("trajectories") or []
        if trajs:
            t = g.create_group("trajectories")
            t.create_dataset("name", data=np.array([x["name"] for x in trajs], dtype=h5py.string_dtype())
                             ).attrs["description"] = "the trajectory each row describes"
            t.create_dataset("weight_decay", data=np.array([num(x["weight_decay"]) for x in trajs])
                             ).attrs["description"] = "its AdamW weight decay"
            for key in ("memorization", "grokking"):
                ds = t.create_dataset(f"{key}_step", data=np.array([num(x[key]["step"]["value"]) for x in trajs]))
                ds.attrs["description"] = f"first logged step meeting the {key} criterion (NaN: none, see {key}_reason)"
                ds.attrs["units"] = "step"
                t.create_dataset(f"{key}_reason", data=np.array([x[key]["step"].get("reason") or "" for x in trajs],
                                                                 dtype=h5py.string_dtype())
                                 ).attrs["description"] = f"why {key}_step is NaN (empty where it is not)"
            targets = [p["target"] for p in trajs[0]["predictions"]]
            for i, target in enumerate(targets):
                ds = t.create_dataset(f"predicted_step_{target}",
                                      data=np.array([num(x["predictions"][i]["step"]["value"]) for x in trajs]))
                ds.attrs["description"] = (f"memorization step + ln(w_mem / {target}) / -ln(1 - lr wd), summed "
                                           "over the schedule's learning rates: predicted grokking step; unconfirmed "
                                           "where grokking_step is NaN (the run never grokked: see grokking_reason)")
                ds.attrs["units"] = "step"


def read_analysis(path: str | Path) -> dict[str, Any] | None:
    with open_file(path, "r") as f, damaged_as_error(path):
        return json.loads(f["analysis"].attrs["result"]) if "analysis" in f else None

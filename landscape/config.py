"""Run configurations: defaults, presets (TOML) and what makes two runs the same experiment."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class ScanConfig:
    """Everything ``landscape scan`` needs. Fields in ``EXECUTION`` do not change the results."""

    task: str = "teacher-student"
    task_options: dict[str, Any] = field(default_factory=dict)
    norms: str = "0.1:10:17:log"
    absolute: bool = False
    restarts: int = 1
    steps: int = 1000
    lr: float = 0.01
    batch_size: int | None = None
    seed: int = 0
    method: str = "riemannian"
    constrain: str = "*"
    history: int = 0
    save_params: bool = False
    # execution only
    chunk: int | None = None
    engine: str = "auto"
    device: str = "cpu"

    EXECUTION = ("chunk", "engine", "device")

    def identity(self) -> dict[str, Any]:
        """The fields that define the experiment (a file holds one identity)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self.EXECUTION}


@dataclass
class TrainConfig:
    """Everything ``landscape train`` needs: one trajectory per (weight decay, init scale, seed)."""

    task: str = "teacher-student"
    task_options: dict[str, Any] = field(default_factory=dict)
    init_scale: list[float] = field(default_factory=lambda: [1.0])
    weight_decay: list[float] = field(default_factory=lambda: [0.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    lr: float = 0.001
    steps: int = 10000
    batch_size: int | None = None
    constrain: str = "*"
    log_every: int = 0
    log_points: int = 100
    # execution only
    checkpoint_every: int = 1000
    chunk: int | None = None
    engine: str = "auto"
    device: str = "cpu"

    EXECUTION = ("checkpoint_every", "chunk", "engine", "device", "init_scale", "weight_decay", "seeds")

    def identity(self) -> dict[str, Any]:
        """Settings shared by every trajectory of the sweep (per-member values are stored apart)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self.EXECUTION and k != "task_options"}


def field_names(cls=ScanConfig) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def load_toml(path: str | Path, cls=ScanConfig) -> dict[str, Any]:
    """Read a preset: top-level keys are config fields, ``[task_options]`` the task's options.

    Raises ``ValueError`` with a one-line message for unreadable files or unknown keys.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {str(path)!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"config file {str(path)!r}: {e}") from None
    allowed = set(field_names(cls))
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"config file {str(path)!r}: unknown keys {', '.join(unknown)}; "
                         f"accepted: {', '.join(sorted(allowed))}")
    return data

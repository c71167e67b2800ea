"""landscape: reduced loss landscapes (Omnigrok's L/U curves) for studying grokking.

The public API (``import landscape as ls``): ``ls.scan``, ``ls.train``, ``ls.phases``, ``ls.analyze``,
``ls.merge``, ``ls.open``, ``ls.plot`` (``landscape.api``), and ``ls.Task`` for a task of your own
(``landscape.tasks``). Every refusal raises ``ls.BadInput``, a ``ValueError``.
"""

from .api import Analysis, Terminated, analyze, merge, open, phases, plot, scan, train  # noqa: A004
from .errors import BadInput
from .version import __version__

__all__ = ["Analysis", "BadInput", "Task", "Terminated", "__version__", "analyze", "merge", "open", "phases", "plot",
           "scan", "train"]


def __getattr__(name):
    if name == "Task":  # imported when asked for: it brings torch, which the file-reading commands do without
        from .tasks import Task

        return Task
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")

"""What the terminal shows: pure functions from the store's plain dicts (and ``landscape.analysis`` results) to
text; nothing here reads files, and what it needs of the analysis it asks ``landscape.analysis`` for.

``tables``     the scan's summary table, the trajectories' tables, ``landscape info``
``analyzed``   ``landscape analyze``'s report and ``landscape phases``' diagram
``curvature``  the first- and second-order certificates of a scan's points, the sharpness along its norm

May import: ``analysis`` and the base modules (``errors``, ``plain``, ``status``, ``version``).
"""

from .analyzed import analysis_report, effective_lines, effective_row, phases_report
from .curvature import sharpness_lines, stationarity_lines
from .tables import (
    MAIN_SERIES, info_text, metrics_table, other_series, phases_line, summary_table, trajectory_table
)

__all__ = ["MAIN_SERIES", "analysis_report", "effective_lines", "effective_row", "info_text", "metrics_table",
           "other_series", "phases_line", "phases_report", "sharpness_lines", "stationarity_lines", "summary_table",
           "trajectory_table"]

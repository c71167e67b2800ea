"""Where a scan point or a trajectory stands: one enum for every place that reads or writes a status.

Scan points are stored as an HDF5 enum over ``POINT`` (``pending``, ``done``,
``diverged``); a trajectory's status is its ``label`` in a string attribute
(``running`` until its last step is checkpointed, then ``done``).

>>> Status.DONE.label, Status.from_label("running")
('done', <Status.RUNNING: 3>)
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    PENDING = 0  # a point not computed yet
    DONE = 1  # finished, values complete
    DIVERGED = 2  # the loss or the parameters stopped being finite
    RUNNING = 3  # a trajectory with a checkpoint before its last step

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> "Status":
        return cls[label.upper()]


POINT = (Status.PENDING, Status.DONE, Status.DIVERGED)  # the statuses a scan point can have

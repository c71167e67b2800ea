"""The HDF5 format, owned in one place: one module per group of the file.

``format``        the file: name and version, opening and refusing, root attributes, errors
``schema``        what the file may hold: every group and dataset, its kind of values and shape, checked on open
``durable``       commits: every change made in memory, then written, checked and renamed into place whole
``scan``          ``/scan`` and ``/branches/*``: the reduced landscape, written chunk by chunk
``curvature``     ``/scan/curvature``: the Riemannian Hessian at every point (``scan --curvature``)
``trajectories``  ``/trajectories/NAME``: logged series and checkpoints of free training
``analysis``      ``/analysis``: what ``landscape analyze`` found
``merge``         shard files joined into one file
``verify``        what a finished point or checkpoint must hold, checked when a run resumes
``staging``       how ``--overwrite`` builds a replacement beside the file until it is complete

Layout (format ``landscape``, version 2) in ``docs/format.md``. This package
imports nothing from the computations that fill it (``scan``, ``train``): they
hand it plans, results and states, and it reads their attributes.
``labelled`` is the same file as labelled xarray data, ``train_state`` a checkpoint as training and the store
exchange it.

May import: ``config``, ``tasks`` and the base modules (``errors``, ``plain``, ``status``, ``version``).
"""

from .analysis import read_analysis, write_analysis
from .format import (
    FORMAT, FORMAT_VERSION, STATUS_ENUM, StoreError, data_fingerprint, describe, holds_task, open_file, root_configs,
    same_task, writer_lock
)
from .durable import commit, drop_groups, publish, write_durably, write_errors
from .merge import Report, merge
from .phases import read_phases, write_phases
from .staging import publish_staging, stage, staged, stale_staging, staging
from .curvature import CURVATURE, CURVATURE_AXES
from .scan import GROUPS, POINT_VALUES, branch_state, prepare_scan, read_branches, read_scan, write_chunk
from .trajectories import (
    CHECKPOINT_SLOTS, drop_unfinished, final_params, prepare_trajectories, read_trajectories, series_meta,
    write_trajectories
)

__all__ = [
    "CHECKPOINT_SLOTS", "CURVATURE", "CURVATURE_AXES", "GROUPS", "drop_groups", "FORMAT", "branch_state", "read_branches", "FORMAT_VERSION", "POINT_VALUES", "STATUS_ENUM", "Report", "StoreError",
    "data_fingerprint", "describe", "drop_unfinished", "final_params", "merge", "open_file", "prepare_scan", "prepare_trajectories", "publish", "publish_staging", "root_configs", "stale_staging", "same_task", "staged", "holds_task",
    "read_analysis", "read_phases", "read_scan", "write_phases", "read_trajectories", "series_meta", "stage", "staging", "write_analysis",
    "write_chunk", "write_durably", "write_errors", "write_trajectories", "writer_lock", "commit",
]

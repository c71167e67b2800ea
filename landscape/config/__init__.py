"""Settings, declared once: every field's type, range, default and help beside its dataclass, read alike by the
command line, TOML presets and the Python API.

``settings``: the scan's and training's fields (``ScanConfig``, ``TrainConfig``), their rules and presets;
``phases``: the phase grid's axes and thresholds (``PhasesConfig``); ``grid``: value grids (``--norms``);
``member``: one trajectory of a sweep (its hyperparameters and name); ``schedule``: the learning rate at each step;
``registry``: choices owned by the engine, looked up when checked.

May import: ``landscape.errors``, ``landscape.plain`` and this folder.
"""

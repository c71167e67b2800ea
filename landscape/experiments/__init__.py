"""Settings to results, computed with the engine: the reduced landscape's scan (``scan``) and its continuation
branches (``branches``), training trajectories with their order parameters (``train``), and the phase grid's
classification, stored and drawn (``phases``).

May import: ``engine``, ``metrics``, ``store``, ``analysis``, ``figures``, ``config``, ``tasks``, ``cluster``,
``report`` and the base modules; nothing that parses flags.
"""

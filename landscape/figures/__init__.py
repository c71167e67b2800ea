"""One module per figure family: the reduced landscape with trajectories on it (``landscape``, which also holds
the palette and panel helpers the others share), training along steps (``training``), two-norm landscapes
(``plane``), phase diagrams (``phases``), and what ``landscape plot`` draws from a file (``of_file``).

May import: ``analysis``, ``store``, ``report`` and the base modules; figures compute nothing new.
"""

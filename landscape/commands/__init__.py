"""What each ``landscape`` command does with validated settings, as a function of explicit arguments that returns
an exit code: the commands that write files (``write``: scan, train, merge), those that read them (``read``:
plot, analyze, info) and ``landscape phases`` (``phases``). ``landscape.api`` calls them; the CLI calls the API.

May import: every folder and module below (``experiments`` and what it uses); never ``api`` or ``cli``.
"""

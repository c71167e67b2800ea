"""Watching a subprocess's output file while it runs (for kill and SIGTERM tests)."""

import time


def watch(proc, read, until, timeout=120, every=0.1):
    """Call ``read()`` while ``proc`` runs until ``until(value)``; return the last value read (None if none).

    Reads that fail because the file is not there yet, is locked or half-created are retried.
    """
    value = None
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            value = read()
        except (OSError, KeyError, ValueError):
            value = None
        if value is not None and until(value):
            break
        time.sleep(every)
    return value

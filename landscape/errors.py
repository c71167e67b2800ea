"""Bad input as one line: the exception every layer raises for a value the user gave, which the CLI prints as one
line on stderr with exit code 2 (and the API raises as a ``ValueError``), and the checks of an output path made
before any work.

>>> one_line(ValueError("two\\n  lines"))
'two lines'
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path



def one_line(e: BaseException | str) -> str:
    """A message on one line (a user sees one line per error)."""
    return " ".join(str(e).split())


class BadInput(ValueError):
    """Input the user can fix (a value, a file, a task): the CLI prints the message as one line, exit code 2.

    ``ConfigError``, ``StoreError`` and ``TaskError`` are kinds of it.
    """


@contextlib.contextmanager
def bad_input(prefix: str | None = None):
    """Validation messages raised inside (``ValueError``) become ``BadInput``; with ``prefix``, so does any
    exception (user task code), as ``PREFIX Type: message``."""
    try:
        yield
    except BadInput:
        raise
    except ValueError as e:
        raise BadInput(one_line(e)) from None
    except Exception as e:  # noqa: BLE001 -- user-supplied task code can raise anything
        if prefix is None:
            raise
        raise BadInput(f"{prefix}{type(e).__name__}: {one_line(e)}{user_frame(e)}") from e  # chained: --traceback


def user_frame(e: BaseException) -> str:
    """`` (in FUNCTION, FILE:LINE, called with ARG: [shape], ...)``: the innermost frame of ``e``'s traceback in
    the user's own code (outside landscape, torch and numpy) and the shapes of its array arguments, or ``""`` when
    it has none."""
    import os
    import sys
    import traceback

    skip = [os.path.dirname(os.path.abspath(__file__))]
    for name in ("torch", "numpy"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip.append(os.path.dirname(os.path.abspath(module.__file__)))
    frames = [(frame, line) for frame, line in traceback.walk_tb(e.__traceback__)
              if not any(os.path.abspath(frame.f_code.co_filename).startswith(s + os.sep) for s in skip)]
    if not frames:
        return ""
    frame, line = frames[-1]
    code = frame.f_code
    shapes = []
    for arg in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        value = frame.f_locals.get(arg)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            shapes.append(f"{arg}: {list(value.shape)}")
    called = f", called with {', '.join(shapes)}" if shapes else ""
    return f" (in {code.co_name}, {os.path.basename(code.co_filename)}:{line}{called})"


def check_output(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, an output path that cannot be written: a directory, a symbolic link loop, a
    directory that does not exist or cannot be written to (tried with a real temporary file, which is what
    holds for root and on read-only mounts as well), or a read-only file. ``BadInput`` naming ``flag``."""
    import errno
    import tempfile

    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadInput(f"{flag} {path}: a symbolic link loop; name a file") from None
        raise BadInput(f"{flag} {path}: {e.strerror}") from None
    if p.is_dir():
        raise BadInput(f"{flag} {path}: is a directory, not a file")
    parent = Path(os.path.realpath(p)).parent
    if not parent.is_dir():
        raise BadInput(f"{flag} {path}: directory {str(parent)!r} does not exist")
    try:
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as e:
        raise BadInput(f"{flag} {path}: directory {str(parent)!r} cannot be written to ({e.strerror})") from None
    if p.exists() and not os.access(p, os.W_OK):
        raise BadInput(f"{flag} {path}: the file is read-only; make it writable (chmod u+w) or choose another")

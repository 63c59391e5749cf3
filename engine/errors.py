"""Errors that reach the user as one clear line (file, row, problem), never a traceback.

Every command of the CLI turns these, and any ``OSError`` or ``ValueError`` that escapes,
into one line ``twodclass: error: ...`` (:func:`error_line`) and exit status 2; an
interrupted command exits with ``128 + signal`` (130 for ctrl+c, 143 for SIGTERM).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "TwodclassError",
    "InputError",
    "ParameterError",
    "Problem",
    "Interrupted",
    "error_line",
    "os_error_message",
    "one_line",
]


def one_line(text: str) -> str:
    """``text`` with control characters (a newline from a damaged file...) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class TwodclassError(Exception):
    """Base class: the CLI prints ``twodclass: error: <message>`` and exits with status 2."""


class InputError(TwodclassError):
    """Bad or unreadable input data. The message names the file (and row) and the problem."""

    def __init__(self, path: object, problem: str, row: int | None = None) -> None:
        where = str(path) if row is None else f"{path}, row {row}"
        super().__init__(one_line(f"{where}: {problem}"))
        self.path = path
        self.row = row
        self.problem = problem


@dataclass(frozen=True)
class Problem:
    """One problem with a parameter: the option (CLI flag) or field it concerns, and the text.

    ``str(problem)`` is the message, which names the option (``"--classes 600 is more than
    the 500 particles"``), so a list of problems reads as it always did.
    """

    option: str
    message: str

    def __str__(self) -> str:
        return self.message


class ParameterError(TwodclassError):
    """Invalid parameters (several problems joined with '; ').

    Attributes
    ----------
    problems : list[Problem]
        The problems, each with the option it concerns (``""`` when not one option's).
    """

    def __init__(self, problems: str | Problem | Iterable[str | Problem]) -> None:
        if isinstance(problems, (str, Problem)):
            problems = [problems]
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__("; ".join(str(p) for p in self.problems))


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal (ctrl+c, SIGTERM, SIGHUP).

    Attributes
    ----------
    signum : int
        The signal; the exit status is ``128 + signum``.
    hint : str
        What to do next (e.g. how to resume), printed after "interrupted".
    """

    def __init__(self, signum: int = signal.SIGINT, hint: str = "") -> None:
        super().__init__(hint)
        self.signum = int(signum)
        self.hint = hint

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


_OS_HINTS = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
}


def os_error_message(exc: OSError) -> str:
    """``"<file>: <what went wrong>"`` for an ``OSError`` (no errno numbers, no repr)."""
    what = _OS_HINTS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename if exc.filename is not None else None
    if name is None:
        return what
    where = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return f"{where}: {what}"


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints for an error (without the ``twodclass: error:`` prefix)."""
    if isinstance(exc, OSError):
        return os_error_message(exc)
    text = " ".join(str(exc).split())  # one line, whatever the message held
    return text or type(exc).__name__

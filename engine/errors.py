"""Errors that reach the user as one clear line (file, row, problem), never a traceback."""

from __future__ import annotations

__all__ = ["TwodclassError", "InputError", "ParameterError"]


class TwodclassError(Exception):
    """Base class: the CLI prints ``twodclass: error: <message>`` and exits with status 2."""


class InputError(TwodclassError):
    """Bad or unreadable input data. The message names the file (and row) and the problem."""

    def __init__(self, path: object, problem: str, row: int | None = None) -> None:
        where = str(path) if row is None else f"{path}, row {row}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.row = row
        self.problem = problem


class ParameterError(TwodclassError):
    """Invalid parameters (several problems joined with '; ')."""

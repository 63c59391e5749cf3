"""Helpers shared by the parameter dataclasses (:mod:`engine.params`,
:mod:`engine.select.selection`): strict number checks and parsing from field metadata,
and strict construction from a dict.

A field's metadata holds its CLI ``flag`` and its valid range (``min``/``max``). The same
check serves every face: :func:`value_problem` for a value (a dataclass built by the TUI,
Scipion or from ``job.json``), :func:`number_parser` for text (a CLI option), so ``nan``,
``inf``, ``2.5`` for a whole number or an out-of-range value are refused everywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from engine.errors import Problem

__all__ = [
    "range_problems",
    "value_problem",
    "number_parser",
    "field_type",
    "from_dict_strict",
]

T = TypeVar("T")


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """``(int | float | bool | str, optional)`` from a field's annotation (``"float | None"``)."""
    ann = str(f.type)
    optional = "None" in ann
    base = ann.replace("| None", "").replace("None |", "").strip()
    return {"int": int, "float": float, "bool": bool, "str": str}.get(base, object), optional


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    if hi is not None:
        return f"<= {hi:g}"
    return ""


def value_problem(
    value: Any, typ: type, lo: float | None, hi: float | None, flag: str, optional: bool = False
) -> str | None:
    """Why ``value`` is not valid for a field (``None`` if it is): type, finiteness, range."""
    if value is None:
        return None if optional else f"{flag} needs a value"
    if typ is bool:
        return None if isinstance(value, bool) else f"{flag} must be true or false (got {value!r})"
    if typ is str:
        return None if isinstance(value, str) else f"{flag} must be text (got {value!r})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a whole number" if typ is int else "a number"
        return f"{flag} must be {kind} (got {value!r})"
    if not math.isfinite(value):
        return f"{flag} must be a finite number (got {value})"
    if typ is int and value != int(value):
        return f"{flag} must be a whole number (got {value})"
    if lo is not None and value < lo:
        return f"{flag} must be >= {lo:g} (got {value})"
    if hi is not None and value > hi:
        return f"{flag} must be <= {hi:g} (got {value})"
    return None


def range_problems(obj: Any) -> list[Problem]:
    """Values of ``obj``'s fields that are of the wrong type, not finite, or outside their
    field's ``min``/``max`` metadata; each names the field's ``flag``."""
    errs = []
    for f in dataclasses.fields(obj):
        typ, optional = field_type(f)
        flag = f.metadata.get("flag", f.name)
        msg = value_problem(
            getattr(obj, f.name), typ, f.metadata.get("min"), f.metadata.get("max"), flag, optional
        )
        if msg:
            errs.append(Problem(flag, msg))
    return errs


def number_parser(
    typ: type, lo: float | None, hi: float | None, flag: str
) -> Callable[[str], int | float]:
    """An argparse ``type=`` function: strict parsing of a finite number in range.

    ``"12"`` -> 12 for an int field (``"12.0"`` too); ``"2.5"``, ``"nan"``, ``"inf"``,
    ``"1e999"`` or a value outside ``[lo, hi]`` raise ``argparse.ArgumentTypeError`` with
    the reason and the valid range.
    """
    want = "a whole number" if typ is int else "a number"
    rng = _range_text(lo, hi)

    def parse(text: str) -> int | float:
        try:
            v = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {want}" + (f" (expected {rng})" if rng else "")
            ) from None
        if typ is int and math.isfinite(v) and v == int(v):
            v = int(v)
        msg = value_problem(v, typ, lo, hi, flag)
        if msg:
            raise argparse.ArgumentTypeError(msg.replace(f"{flag} ", "", 1))
        return v

    parse.__name__ = typ.__name__  # argparse names the type in some messages
    return parse


def from_dict_strict(cls: type[T], d: Mapping[str, Any], what: str = "parameter") -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    return cls(**dict(d))

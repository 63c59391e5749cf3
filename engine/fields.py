"""Helpers shared by the parameter dataclasses (:mod:`engine.params`,
:mod:`engine.select.selection`):
range checks from field metadata and strict construction from a dict."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["range_problems", "from_dict_strict"]

T = TypeVar("T")


def range_problems(obj: Any) -> list[str]:
    """Values outside their field's ``min``/``max`` metadata, named by the field's ``flag``."""
    errs = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None or isinstance(v, bool):
            continue
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and v < lo:
            errs.append(f"{f.metadata['flag']} must be >= {lo:g} (got {v})")
        if hi is not None and v > hi:
            errs.append(f"{f.metadata['flag']} must be <= {hi:g} (got {v})")
    return errs


def from_dict_strict(cls: type[T], d: Mapping[str, Any], what: str = "parameter") -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    return cls(**dict(d))

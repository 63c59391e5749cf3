"""STAR files (RELION) read into pandas tables and written atomically.

Block names are given without ``data_``: ``data_optics`` -> ``"optics"``, an anonymous
``data_`` block -> ``""``. Loop blocks are DataFrames; simple (key/value) blocks are read
as one-row DataFrames and may be written from a one-row DataFrame marked simple (see
:func:`write_star`) or from a plain ``dict``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from engine.errors import InputError
from engine.io.atomic import atomic_write

__all__ = ["read_star", "write_star", "FLOAT_FORMAT"]

FLOAT_FORMAT = "%.6f"


def read_star(path: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Read every data block of a STAR file.

    Returns
    -------
    dict[str, DataFrame]
        Block name (without ``data_``) -> table, in file order. Simple blocks become
        one-row tables.

    Raises
    ------
    InputError
        Missing, unreadable or garbled file (no data block found).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        raw = starfile.read(p, always_dict=True)
    except UnicodeDecodeError:
        raise InputError(p, "not a text STAR file (binary content)") from None
    except Exception as exc:  # starfile/pandas parse errors of all kinds
        raise InputError(p, f"cannot parse STAR file ({type(exc).__name__}: {exc})") from None
    if not raw:
        raise InputError(p, "no data_ block found; is this a STAR file?")
    out: dict[str, pd.DataFrame] = {}
    for name, block in raw.items():
        if isinstance(block, pd.DataFrame):
            out[str(name)] = block
        elif isinstance(block, Mapping):
            df = pd.DataFrame({k: [v] for k, v in block.items()})
            df.attrs["simple"] = True
            out[str(name)] = df
        else:  # pragma: no cover - starfile only returns the two above
            raise InputError(p, f"block data_{name} has an unexpected type")
    return out


def write_star(
    path: str | os.PathLike[str],
    blocks: Mapping[str, pd.DataFrame | Mapping[str, Any]],
    float_format: str = FLOAT_FORMAT,
) -> None:
    """Write ``blocks`` (name without ``data_`` -> table) as a STAR file, atomically.

    Column order and block order are kept. A value that is a ``dict``, or a one-row
    DataFrame with ``df.attrs["simple"] = True`` (as :func:`read_star` returns simple
    blocks), is written as a simple key/value block; DataFrames otherwise as ``loop_``.
    Floats use ``float_format`` (``%.6f``, as RELION).
    """
    data: dict[str, pd.DataFrame | dict[str, Any]] = {}
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame):
            if block.attrs.get("simple") and len(block) == 1:
                data[str(name)] = {c: _scalar(block[c].iloc[0]) for c in block.columns}
            else:
                data[str(name)] = block
        else:
            data[str(name)] = dict(block)
    with atomic_write(path) as tmp:
        starfile.write(data, tmp.path, float_format=float_format)


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v

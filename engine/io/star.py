"""STAR files (RELION) read into pandas tables and written atomically.

Block names are given without ``data_``: ``data_optics`` -> ``"optics"``, an anonymous
``data_`` block -> ``""``. Loop blocks are DataFrames; simple (key/value) blocks are read
as one-row DataFrames and may be written from a one-row DataFrame marked simple (see
:func:`write_star`) or from a plain ``dict``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import starfile

from engine.errors import InputError
from engine.io.atomic import atomic_write

__all__ = ["read_star", "read_star_columns", "write_star", "FLOAT_FORMAT"]

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' dtype guesses on odd files
            raw = starfile.read(p, always_dict=True)
    except UnicodeDecodeError:
        raise InputError(p, "not a text STAR file (binary content)") from None
    except Exception as exc:  # starfile/pandas parse errors of all kinds
        _check_rows(p)  # names the row when a row is to blame
        msg = " ".join(str(exc).split())
        raise InputError(p, f"cannot parse STAR file ({type(exc).__name__}: {msg})") from None
    if not raw:
        raise InputError(p, "no data_ block found; is this a STAR file?")
    out: dict[str, pd.DataFrame] = {}
    checked = False
    for name, block in raw.items():
        if isinstance(block, pd.DataFrame):
            cols = [str(c) for c in block.columns]
            dup = sorted({c for c in cols if cols.count(c) > 1})
            if dup:
                raise InputError(
                    p, f"data_{name}: column _{dup[0]} appears more than once in the loop"
                )
            if not checked and len(block) and block.isna().to_numpy().any():
                _check_rows(p)  # a short row reads as NaN: find it
                checked = True
            out[str(name)] = block
        elif isinstance(block, Mapping):
            df = pd.DataFrame({k: [v] for k, v in block.items()})
            df.attrs["simple"] = True
            out[str(name)] = df
        else:  # pragma: no cover - starfile only returns the two above
            raise InputError(p, f"block data_{name} has an unexpected type")
    return out


def read_star_columns(
    path: str | os.PathLike[str], columns: tuple[str, ...]
) -> pd.DataFrame | None:
    """Only ``columns`` of the particles table of a STAR file, as a DataFrame (or None).

    A fraction of the cost of reading the whole table (no strings are made), and the
    parser holds the GIL only briefly, so a thread reading 100,000 particles does not delay
    the UI. The numbers are parsed as :func:`read_star` parses them. The
    table is the loop block with ``rlnClassNumber`` (``data_particles`` preferred); missing
    columns are left out. Returns None when the file is unusual (quoted values, no such
    block): read it with the engine then.
    """
    blocks: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    state = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, raw in enumerate(fh):
            line = raw.strip()
            if line.startswith("data_"):
                cur = {"name": line[5:], "cols": [], "start": None, "rows": 0, "quoted": False}
                blocks.append(cur)
                state = "block"
            elif cur is None or not line or line.startswith("#"):
                continue
            elif line.startswith("loop_"):
                state = "header"
            elif state == "header" and line.startswith("_"):
                cur["cols"].append(line.split()[0][1:])
            elif state in ("header", "rows") and cur["cols"]:
                if state == "header":
                    cur["start"] = i
                    state = "rows"
                cur["rows"] += 1
                cur["quoted"] = cur["quoted"] or "'" in line or '"' in line
    cands = [b for b in blocks if "rlnClassNumber" in b["cols"] and b["start"] is not None]
    cands.sort(key=lambda b: b["name"] != "particles")
    if not cands or cands[0]["quoted"]:
        return None
    b = cands[0]
    use = [c for c in columns if c in b["cols"]]
    df = pd.read_csv(
        path,
        delimiter=r"\s+",
        header=None,
        comment="#",
        engine="c",
        keep_default_na=False,
        na_values=["nan", "NaN", "<NA>"],
        skiprows=b["start"],
        nrows=b["rows"],
        usecols=[b["cols"].index(c) for c in use],
    )
    if len(df.columns) != len(use) or len(df) != b["rows"]:
        return None
    df.columns = [b["cols"][j] for j in df.columns]
    return df[use]


_TOKEN = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")


def _check_rows(p: Path) -> None:
    """Raise InputError at the first loop row whose number of values is not the loop's
    number of columns (a file cut short, a missing value, a value with an unquoted space)."""
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    block, labels, in_loop, row = "", 0, False, 0
    for lineno, line in enumerate(lines, 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if t.startswith("data_"):
            block, labels, in_loop = t[5:], 0, False
        elif t.startswith("loop_"):
            labels, in_loop, row = 0, True, 0
        elif t.startswith("_"):
            if in_loop and row == 0:
                labels += 1
            else:
                in_loop = False  # a key/value line of a simple block
        elif in_loop and labels:
            row += 1
            n = len(_TOKEN.findall(t.split(" #", 1)[0] if " #" in t else t))
            if n != labels:
                hint = (
                    "the file is cut short or a value is missing"
                    if n < labels
                    else "a value containing a space must be quoted"
                )
                raise InputError(
                    p,
                    f"data_{block} has {labels} columns but line {lineno} has {n} "
                    f"value{'' if n == 1 else 's'} ({hint})",
                    row=row,
                )


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

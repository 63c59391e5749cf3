"""cryoSPARC ``.cs`` particle files (numpy structured arrays) as RELION tables.

A ``.cs`` file holds one record per particle, with fields such as ``blob/path`` (a leading
``>`` marks a project-relative path), ``blob/idx`` (0-based image number), ``blob/psize_A``,
``blob/shape``, ``ctf/df1_A``, ``ctf/df2_A``, ``ctf/df_angle_rad``, ``ctf/accel_kv``,
``ctf/cs_mm``, ``ctf/amp_contrast``, ``ctf/phase_shift_rad`` and ``uid``. Two formats exist,
both read by :func:`load_cs_array`:

- format 1: a numpy ``.npy`` record array (strings as fixed-length bytes), read with
  ``allow_pickle=False``: a file whose fields are pickled Python objects is refused, since
  loading it would run code from the file;
- format 2: cryoSPARC's compressed dataset (``cryosparc-tools``' ``Dataset.save(path,
  format=2)``): magic ``\\x95CSDAT``, a JSON header (length, fields, compression), one
  block per field (raw or LZ4-compressed), then a heap of NUL-terminated strings that the
  string fields point into. It is parsed here, every size and offset checked against the
  file before use (cryosparc-tools' own loader trusts them and crashes the process on a
  truncated file), and decompressed with ``lz4.block``.

:func:`read_cs` converts the records to RELION 3.1 columns (``rlnImageName``,
``rlnDefocusU`` ...) and a synthesized optics table (one group per distinct voltage / Cs /
amplitude contrast / pixel size / box).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError

__all__ = ["read_cs", "load_cs_array"]

_OPTICS_FIELDS = {  # cs field -> (RELION optics column, default)
    "ctf/accel_kv": ("rlnVoltage", 300.0),
    "ctf/cs_mm": ("rlnSphericalAberration", 2.7),
    "ctf/amp_contrast": ("rlnAmplitudeContrast", 0.1),
    "blob/psize_A": ("rlnImagePixelSize", 0.0),
}

NPY_MAGIC = b"\x93NUMPY"
CSDAT_MAGIC = b"\x95CSDAT"
#: field types of cryoSPARC datasets (``|O``: a string, stored as an offset into the heap)
_CSDAT_TYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in ("f4", "f8", "c8", "c16", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
}
_MAX_NPY_HEADER = 1 << 20


def load_cs_array(path: str | os.PathLike[str]) -> np.ndarray:
    """The records of a ``.cs`` file (format 1 or 2) as a 1-D structured array.

    String fields are bytes (format 1) or ``str`` objects (format 2). Never runs code from
    the file and never modifies it.

    Raises
    ------
    InputError
        Missing or unreadable file, pickled payload, a damaged or truncated file, or an
        array that is not one record per particle.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputError(p, f"cannot read .cs file ({exc.strerror or exc})") from None
    if magic == NPY_MAGIC:
        arr = _load_npy(p)
    elif magic == CSDAT_MAGIC:
        arr = _load_csdat(p)
    else:
        raise InputError(
            p,
            "not a cryoSPARC .cs file (neither a numpy record array nor cryoSPARC's "
            "compressed dataset format)",
        )
    if arr.dtype.names is None:
        raise InputError(
            p, f"not a cryoSPARC .cs file: it holds a plain {arr.dtype} array, not records"
        )
    if arr.ndim != 1:
        shape = " x ".join(map(str, arr.shape)) or "a single record"
        raise InputError(
            p,
            f"the records form a {arr.ndim}-D array ({shape}); a cryoSPARC .cs file holds a "
            "1-D array, one record per particle",
        )
    return arr


def _load_npy(p: Path) -> np.ndarray:
    try:
        return np.load(  # type: ignore[call-arg]  # numpy >= 1.24 (stubs lag)
            p, allow_pickle=False, max_header_size=_MAX_NPY_HEADER
        )
    except ValueError as exc:
        text = str(exc)
        if "allow_pickle" in text or "object" in text.lower():
            raise InputError(
                p,
                "holds pickled Python objects, which are never loaded (loading them would "
                "run code from the file); re-export the particles from cryoSPARC",
            ) from None
        raise InputError(p, f"cannot read .cs file (damaged numpy data: {text})") from None
    except Exception as exc:  # numpy's header parser fails in many ways on a damaged file
        msg = " ".join(str(exc).split())
        raise InputError(
            p, f"cannot read .cs file (damaged: {type(exc).__name__}: {msg})"
        ) from None


def _csdat_error(p: Path, what: str) -> InputError:
    return InputError(p, f"damaged cryoSPARC dataset (format 2): {what}")


def _csdat_header(p: Path, raw: bytes) -> tuple[dict[str, Any], int]:
    if len(raw) < 10:
        raise _csdat_error(p, "the file ends inside its header")
    hsize = int.from_bytes(raw[6:10], "little")
    if 10 + hsize > len(raw):
        raise _csdat_error(p, f"header of {hsize} bytes, but the file has {len(raw)}")
    try:
        h = json.loads(raw[10 : 10 + hsize].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _csdat_error(p, f"the header is not JSON ({exc})") from None
    ok = (
        isinstance(h, dict)
        and isinstance(h.get("length"), int)
        and not isinstance(h.get("length"), bool)
        and h["length"] >= 0
        and isinstance(h.get("dtype"), list)
        and h.get("compression") in (None, "lz4")
        and isinstance(h.get("compressed_fields", []), list)
    )
    if not ok:
        raise _csdat_error(p, "the header lacks length, dtype or compression")
    return h, 10 + hsize


def _csdat_fields(p: Path, h: dict[str, Any]) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    fields = []
    for f in h["dtype"]:
        if not (isinstance(f, list) and len(f) in (2, 3) and isinstance(f[0], str) and f[0]):
            raise _csdat_error(p, f"bad field description {f!r}")
        name, typ = f[0], f[1]
        shape: tuple[int, ...] = ()
        if len(f) == 3:
            if not (
                isinstance(f[2], list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in f[2])
                and int(np.prod(f[2])) <= 1 << 16
            ):
                raise _csdat_error(p, f"bad shape of field {name!r}: {f[2]!r}")
            shape = tuple(f[2])
        if typ == "|O":
            dt = np.dtype("<u8")  # offsets into the string heap
        elif isinstance(typ, str) and typ in _CSDAT_TYPES:
            dt = _CSDAT_TYPES[typ]
        else:
            raise _csdat_error(p, f"unknown type {typ!r} of field {name!r}")
        fields.append((name, dt, shape))
    names = [f[0] for f in fields]
    if len(set(names)) != len(names):
        raise _csdat_error(p, "a field is listed twice")
    return fields


def _decompress(p: Path, name: str, buf: bytes, size: int) -> bytes:
    try:
        import lz4.block
    except ImportError:  # pragma: no cover - lz4 is a dependency
        raise InputError(
            p, "reading compressed cryoSPARC datasets needs the lz4 package (pip install lz4)"
        ) from None
    if size > 255 * len(buf) + 64:  # more than LZ4 can expand: a damaged length
        raise _csdat_error(p, f"field {name!r} cannot hold {size} bytes")
    try:
        out = lz4.block.decompress(buf, uncompressed_size=size)
    except Exception as exc:  # lz4.block.LZ4BlockError and friends
        raise _csdat_error(p, f"field {name!r} does not decompress ({exc})") from None
    if len(out) != size:
        raise _csdat_error(p, f"field {name!r} holds {len(out)} bytes, not {size}")
    return out


def _heap_strings(p: Path, name: str, offsets: np.ndarray, heap: bytes) -> np.ndarray:
    """``str`` objects of the NUL-terminated strings at ``offsets`` in ``heap``."""
    if offsets.size == 0:
        return np.empty(offsets.shape, dtype=object)
    nul = np.flatnonzero(np.frombuffer(heap, dtype=np.uint8) == 0)
    uniq, inverse = np.unique(offsets.ravel(), return_inverse=True)
    end: np.ndarray = np.asarray(np.searchsorted(nul, uniq))
    if int(uniq[-1]) >= len(heap) or int(end[-1]) >= nul.size:
        raise _csdat_error(p, f"field {name!r} points past the end of the string heap")
    text = [
        heap[int(a) : int(nul[j])].decode("utf-8", "replace")
        for a, j in zip(uniq, end, strict=True)
    ]
    return np.array(text + [None], dtype=object)[:-1][inverse.ravel()].reshape(offsets.shape)


def _load_csdat(p: Path) -> np.ndarray:
    try:
        raw = p.read_bytes()
    except (OSError, MemoryError) as exc:
        raise InputError(p, f"cannot read .cs file ({exc})") from None
    h, pos = _csdat_header(p, raw)
    fields = _csdat_fields(p, h)
    if not fields:
        raise _csdat_error(p, "no fields")
    n = int(h["length"])
    compressed = set(x for x in h.get("compressed_fields", []) if isinstance(x, str))
    if compressed and h.get("compression") != "lz4":
        raise _csdat_error(p, "compressed fields without a compression method")
    columns: dict[str, np.ndarray] = {}
    for name, dt, shape in fields if n else []:
        if pos + 4 > len(raw):
            raise _csdat_error(p, f"the file ends before field {name!r} (truncated?)")
        size = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if pos + size > len(raw):
            raise _csdat_error(p, f"the file ends inside field {name!r} (truncated?)")
        buf = raw[pos : pos + size]
        pos += size
        want = n * dt.itemsize * int(np.prod(shape, dtype=np.int64))
        if name in compressed:
            buf = _decompress(p, name, buf, want)
        elif len(buf) != want:
            raise _csdat_error(p, f"field {name!r} holds {len(buf)} bytes, not {want}")
        columns[name] = np.frombuffer(buf, dtype=dt).reshape((n, *shape))
    heap = raw[pos:]
    strings = {name for name, typ in ((f[0], f[1]) for f in h["dtype"]) if typ == "|O"}
    try:
        arr = np.empty(
            n, dtype=[(name, "O" if name in strings else dt, shape) for name, dt, shape in fields]
        )
    except (ValueError, TypeError, MemoryError) as exc:
        raise _csdat_error(p, f"bad fields ({exc})") from None
    for name, col in columns.items():
        arr[name] = _heap_strings(p, name, col, heap) if name in strings else col
    return arr


def _strings(col: np.ndarray) -> np.ndarray:
    out = [
        v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in col
    ]
    return np.array(out, dtype=object)


def read_cs(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert a ``.cs`` file into RELION-style particle and optics tables.

    Returns
    -------
    particles : DataFrame
        ``rlnImageName`` (``NNNNNN@path``, 1-based), ``rlnOpticsGroup``, CTF columns
        (``rlnDefocusU/V/Angle``, ``rlnPhaseShift`` in degrees) where present,
        ``rlnMicrographName`` / ``rlnCoordinateX/Y`` when the location fields exist, then
        every scalar field of the file under its original name (``uid``, ``blob/idx`` ...).
    optics : DataFrame
        ``rlnOpticsGroupName``, ``rlnOpticsGroup``, ``rlnVoltage``,
        ``rlnSphericalAberration``, ``rlnAmplitudeContrast``, ``rlnImagePixelSize``,
        ``rlnImageSize``, ``rlnImageDimensionality``.
    """
    p = Path(path)
    arr = load_cs_array(p)
    names = set(arr.dtype.names or ())
    n = arr.shape[0]
    if n == 0:
        raise InputError(p, "the file holds no particles")
    for need in ("blob/path", "blob/idx"):
        if need not in names:
            raise InputError(p, f"no '{need}' field: this .cs file has no particle images")
    paths = _strings(arr["blob/path"])
    paths = np.array([s[1:] if s.startswith(">") else s for s in paths], dtype=object)
    idx = np.asarray(arr["blob/idx"], dtype=np.int64)
    if n and idx.min() < 0:
        bad = int(np.argmax(idx < 0))
        raise InputError(p, f"negative blob/idx {idx[bad]}", row=bad + 1)
    names_img = [f"{i + 1:06d}@{s}" for i, s in zip(idx, paths, strict=True)]
    df = pd.DataFrame({"rlnImageName": names_img})

    # optics groups: distinct (voltage, Cs, Q, pixel size, box)
    keys = {}
    for field, (col, default) in _OPTICS_FIELDS.items():
        keys[col] = (
            np.asarray(arr[field], dtype=np.float64) if field in names else np.full(n, default)
        )
    if "blob/shape" in names:
        shp = np.asarray(arr["blob/shape"]).reshape(n, -1)
        keys["rlnImageSize"] = shp[:, -1].astype(np.int64)
    else:
        keys["rlnImageSize"] = np.zeros(n, dtype=np.int64)
    kdf = pd.DataFrame(keys)
    groups = kdf.drop_duplicates().reset_index(drop=True)
    groups.insert(0, "rlnOpticsGroup", np.arange(1, len(groups) + 1))
    groups.insert(0, "rlnOpticsGroupName", [f"opticsGroup{g}" for g in groups.rlnOpticsGroup])
    groups["rlnImageDimensionality"] = 2
    merged = kdf.merge(groups, on=list(keys), how="left")
    df["rlnOpticsGroup"] = merged["rlnOpticsGroup"].to_numpy()
    if "blob/psize_A" not in names:  # unknown here: the stack header's is used
        groups = groups.drop(columns="rlnImagePixelSize")

    if "ctf/df1_A" in names:
        df["rlnDefocusU"] = np.asarray(arr["ctf/df1_A"], dtype=np.float64)
        df["rlnDefocusV"] = (
            np.asarray(arr["ctf/df2_A"], dtype=np.float64)
            if "ctf/df2_A" in names
            else df["rlnDefocusU"]
        )
        df["rlnDefocusAngle"] = (
            np.rad2deg(np.asarray(arr["ctf/df_angle_rad"], np.float64))
            if "ctf/df_angle_rad" in names
            else 0.0
        )
        if "ctf/phase_shift_rad" in names:
            df["rlnPhaseShift"] = np.rad2deg(np.asarray(arr["ctf/phase_shift_rad"], np.float64))
        if "ctf/bfactor" in names:
            df["rlnCtfBfactor"] = np.asarray(arr["ctf/bfactor"], dtype=np.float64)
    if "location/micrograph_path" in names:
        mics = _strings(arr["location/micrograph_path"])
        df["rlnMicrographName"] = [s[1:] if s.startswith(">") else s for s in mics]
        if {"location/center_x_frac", "location/micrograph_shape"} <= names:
            mshape = np.asarray(arr["location/micrograph_shape"]).reshape(n, -1)
            df["rlnCoordinateX"] = np.asarray(arr["location/center_x_frac"]) * mshape[:, -1]
            df["rlnCoordinateY"] = np.asarray(arr["location/center_y_frac"]) * mshape[:, 0]

    for name in arr.dtype.names or ():  # keep the original scalar fields
        col = arr[name]
        if col.ndim != 1 or name in df.columns:
            continue
        if col.dtype.kind in "SO":
            df[name] = _strings(col)
        elif col.dtype.kind in "iufb":
            df[name] = col
    return df, groups

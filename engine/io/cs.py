"""cryoSPARC ``.cs`` particle files (numpy structured arrays) as RELION tables.

A ``.cs`` file is a ``.npy`` file holding one structured array, one record per particle,
with fields such as ``blob/path`` (bytes; a leading ``>`` marks a project-relative path),
``blob/idx`` (0-based image number), ``blob/psize_A``, ``blob/shape``, ``ctf/df1_A``,
``ctf/df2_A``, ``ctf/df_angle_rad``, ``ctf/accel_kv``, ``ctf/cs_mm``, ``ctf/amp_contrast``,
``ctf/phase_shift_rad`` and ``uid``. :func:`read_cs` converts them to RELION 3.1 columns
(``rlnImageName``, ``rlnDefocusU`` ...) and a synthesized optics table (one group per
distinct voltage / Cs / amplitude contrast / pixel size / box).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def load_cs_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Load the structured array of a ``.cs`` file (read-only; never modifies it)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        raise InputError(
            p,
            "not a cryoSPARC .cs file (expected a numpy .npy structured "
            "array; compressed cryoSPARC datasets are not supported)",
        )
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise InputError(p, f"cannot read .cs file ({exc})") from None
        arr = np.load(p, allow_pickle=True)  # string fields stored as Python objects
    except (OSError, EOFError) as exc:
        raise InputError(p, f"cannot read .cs file ({exc})") from None
    if arr.dtype.names is None or arr.ndim != 1:
        raise InputError(p, "not a cryoSPARC .cs file (no record fields)")
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

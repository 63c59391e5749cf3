"""Small test data sets built on the fly (importable by every test module).

Builders write into a folder (``tmp_path``) and return the path of the particle file plus
the images they stored, so tests can compare what they read with what was written:

- :func:`make_stack`    an MRC stack of random images (any supported dtype)
- :func:`make_star_31`  RELION 3.1 STAR (optics + particles) over one or two stacks
- :func:`make_star_30`  RELION 3.0 STAR (single ``data_`` block, CTF columns per particle)
- :func:`make_cs`       cryoSPARC ``.cs`` structured array with the real field names
- :func:`digest`        sha256 of a file (to check inputs stay unchanged)
- :func:`project_real_space`  slow, obvious real-space projector (RELION Euler matrix)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

__all__ = [
    "make_stack",
    "make_star_31",
    "make_star_30",
    "make_cs",
    "digest",
    "project_real_space",
    "corr",
]


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def make_stack(
    path: str | Path,
    n: int = 5,
    box: int = 16,
    apix_A: float = 2.0,
    dtype: type = np.float32,
    seed: int = 0,
) -> np.ndarray:
    """Write ``n`` random ``box x box`` images; returns them ``(n, box, box)`` as stored."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = rng.integers(
            max(info.min, -100), min(info.max, 100), size=(n, box, box), dtype=dtype
        )
    else:
        data = rng.standard_normal((n, box, box)).astype(dtype)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.set_image_stack()
        m.voxel_size = apix_A
    return data


def _ctf_columns(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    du = rng.uniform(10000, 20000, n)
    return {"rlnDefocusU": du, "rlnDefocusV": du - 200.0, "rlnDefocusAngle": rng.uniform(0, 180, n)}


def make_star_31(
    folder: str | Path,
    n: int = 6,
    box: int = 16,
    apix_A: float = 1.25,
    two_stacks: bool = True,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """RELION 3.1 particles in ``folder/particles.star`` with stacks under
    ``folder/Extract/``. Returns (star path, images in table order ``(n, box, box)``)."""
    folder = Path(folder)
    (folder / "Extract").mkdir(parents=True, exist_ok=True)
    na = n // 2 if two_stacks else n
    a = make_stack(folder / "Extract" / "a.mrcs", na, box, apix_A, seed=seed)
    names = [f"{i + 1:06d}@Extract/a.mrcs" for i in range(na)]
    images = [a]
    if two_stacks:
        b = make_stack(folder / "Extract" / "b.mrcs", n - na, box, apix_A, seed=seed + 1)
        names += [f"{i + 1:06d}@Extract/b.mrcs" for i in range(n - na)]
        images.append(b)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"],
            "rlnOpticsGroup": [1, 2],
            "rlnVoltage": [300.0, 200.0],
            "rlnSphericalAberration": [2.7, 1.4],
            "rlnAmplitudeContrast": [0.1, 0.07],
            "rlnImagePixelSize": [apix_A, apix_A],
            "rlnImageSize": [box, box],
            "rlnImageDimensionality": [2, 2],
        }
    )
    parts = pd.DataFrame(
        {
            "rlnImageName": names,
            "rlnMicrographName": [f"mic{i % 2}.mrc" for i in range(n)],
            "rlnCoordinateX": np.arange(n) * 10.0 + 0.5,
            "rlnOpticsGroup": [1 + (i % 2) for i in range(n)],
            **_ctf_columns(n, seed),
            "rlnPhaseShift": np.zeros(n),
            "rlnCtfBfactor": np.zeros(n),
        }
    )
    path = folder / "particles.star"
    starfile.write({"optics": optics, "particles": parts}, path)
    return path, np.concatenate(images)


def make_star_30(
    folder: str | Path,
    n: int = 5,
    box: int = 16,
    apix_A: float = 1.6,
    seed: int = 0,
    block: str = "",
) -> tuple[Path, np.ndarray]:
    """RELION 3.0 particles (single block ``data_<block>``, no optics) in
    ``folder/data.star``; voltage etc. per particle, pixel size from
    rlnDetectorPixelSize / rlnMagnification. Image names list the stack in reverse order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = make_stack(folder / "stack.mrcs", n, box, apix_A, dtype=np.int16, seed=seed)
    order = np.arange(n)[::-1]
    parts = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@stack.mrcs" for i in order],
            "rlnVoltage": np.full(n, 200.0),
            "rlnSphericalAberration": np.full(n, 2.0),
            "rlnAmplitudeContrast": np.full(n, 0.07),
            "rlnDetectorPixelSize": np.full(n, 5.0),
            "rlnMagnification": np.full(n, 5.0e4 / apix_A),
            **_ctf_columns(n, seed),
        }
    )
    path = folder / "data.star"
    starfile.write({block: parts}, path)
    return path, imgs[order].astype(np.float32)


CS_DTYPE = [
    ("uid", "<u8"),
    ("blob/path", "S64"),
    ("blob/idx", "<u4"),
    ("blob/shape", "<u4", (2,)),
    ("blob/psize_A", "<f4"),
    ("blob/sign", "<f4"),
    ("ctf/type", "S8"),
    ("ctf/accel_kv", "<f4"),
    ("ctf/cs_mm", "<f4"),
    ("ctf/amp_contrast", "<f4"),
    ("ctf/df1_A", "<f4"),
    ("ctf/df2_A", "<f4"),
    ("ctf/df_angle_rad", "<f4"),
    ("ctf/phase_shift_rad", "<f4"),
]


def make_cs(
    folder: str | Path, n: int = 6, box: int = 16, apix_A: float = 1.1, seed: int = 0
) -> tuple[Path, np.ndarray]:
    """cryoSPARC ``folder/J3/particles.cs`` whose ``blob/path`` values are
    project-relative (``>J2/extract/stack.mrc``; the project folder is ``folder``).
    Returns (cs path, images in record order)."""
    folder = Path(folder)
    (folder / "J2" / "extract").mkdir(parents=True, exist_ok=True)
    (folder / "J3").mkdir(parents=True, exist_ok=True)
    imgs = make_stack(folder / "J2" / "extract" / "stack.mrc", n, box, apix_A, seed=seed)
    rng = np.random.default_rng(seed)
    arr = np.zeros(n, dtype=CS_DTYPE)
    arr["uid"] = rng.integers(1, 2**62, n, dtype=np.uint64)
    arr["blob/path"] = b">J2/extract/stack.mrc"
    idx = rng.permutation(n)
    arr["blob/idx"] = idx
    arr["blob/shape"] = box
    arr["blob/psize_A"] = apix_A
    arr["blob/sign"] = -1.0
    arr["ctf/type"] = b"spline"
    arr["ctf/accel_kv"] = 300.0
    arr["ctf/cs_mm"] = 2.7
    arr["ctf/amp_contrast"] = 0.1
    arr["ctf/df1_A"] = rng.uniform(10000, 20000, n)
    arr["ctf/df2_A"] = arr["ctf/df1_A"] - 150.0
    arr["ctf/df_angle_rad"] = rng.uniform(0, np.pi, n)
    arr["ctf/phase_shift_rad"] = 0.0
    path = folder / "J3" / "particles.cs"
    with open(path, "wb") as fh:  # .cs = a .npy file under another name
        np.save(fh, arr)
    return path, imgs[idx]


def _trilinear(v: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    n = v.shape[0]
    out = np.zeros(x.shape)
    z0, y0, x0 = (np.floor(a).astype(int) for a in (z, y, x))
    fz, fy, fx = z - z0, y - y0, x - x0
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                zi, yi, xi = z0 + dz, y0 + dy, x0 + dx
                ok = (zi >= 0) & (zi < n) & (yi >= 0) & (yi < n) & (xi >= 0) & (xi < n)
                w = (fz if dz else 1 - fz) * (fy if dy else 1 - fy) * (fx if dx else 1 - fx)
                vals = v[np.clip(zi, 0, n - 1), np.clip(yi, 0, n - 1), np.clip(xi, 0, n - 1)]
                out += w * np.where(ok, vals, 0.0)
    return out


def project_real_space(
    volume: np.ndarray, rot_deg: float, tilt_deg: float, psi_deg: float = 0.0
) -> np.ndarray:
    """Slow reference: ``P(x, y) = sum_z V(A^T (x, y, z))`` with RELION's Euler matrix ``A``
    (rotate the volume, sum along z). ``(box, box)`` float64."""
    from engine.core.projection import euler_matrix

    n = volume.shape[0]
    c = n // 2
    a = euler_matrix(rot_deg, tilt_deg, psi_deg)[0]
    g = np.arange(n) - c
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    p = np.stack([x, y, z], axis=-1) @ a  # row vectors: (A^T r)^T
    return _trilinear(volume, p[..., 2] + c, p[..., 1] + c, p[..., 0] + c).sum(axis=0)

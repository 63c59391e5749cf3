"""Helpers of the bad-input catalogue (``tests/test_bad_input*.py``) and the interruption tests.

- :func:`write_particles`  a tiny RELION 3.1 particle set (one stack of blob images)
- :func:`tree_digest`      sha256 of every file under a folder (inputs stay byte-identical)
- :func:`cli`              ``twodclass ...`` in this process: ``(status, stdout, stderr)``
- :func:`assert_one_error` exit status 2, one ``twodclass: error:`` line naming what it must
- :data:`TINY`             run options for a job of a few hundred milliseconds
- :func:`readonly_fs`      make a folder behave as on a read-only file system (EROFS)
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

from engine.cli import main

__all__ = [
    "same_result",
    "write_particles",
    "write_stack",
    "tree_digest",
    "cli",
    "assert_one_error",
    "TINY",
    "readonly_fs",
]

TINY = [
    "--classes",
    "2",
    "--online-iters",
    "3",
    "--batch-per-class",
    "10",
    "--max-res",
    "12",
    "--threads",
    "1",
    "--seed",
    "1",
    "--progress",
    "none",
]


def write_stack(path: Path, data: np.ndarray, apix_A: float = 3.0, mode_float: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.ascontiguousarray(data, np.float32 if mode_float else data.dtype))
            m.set_image_stack()
            m.voxel_size = apix_A


def blobs(n: int, box: int, seed: int = 0) -> np.ndarray:
    """``(n, box, box)`` float32: two kinds of disc pairs, rotated at random, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:box, 0:box].astype(np.float32) - box // 2
    out = np.empty((n, box, box), np.float32)
    for i in range(n):
        a = rng.uniform(0, 2 * np.pi)
        d = box * (0.15 if i % 2 else 0.25)
        cx, cy = d * np.cos(a), d * np.sin(a)
        img = (x**2 + y**2 < (0.2 * box) ** 2).astype(np.float32)
        img += ((x - cx) ** 2 + (y - cy) ** 2 < (0.08 * box) ** 2).astype(np.float32)
        out[i] = img + 0.5 * rng.standard_normal((box, box)).astype(np.float32)
    return out


def write_particles(
    folder: str | Path,
    n: int = 40,
    box: int = 32,
    apix_A: float = 3.0,
    ctf: bool = True,
    images: np.ndarray | None = None,
    name: str = "particles.star",
    seed: int = 0,
) -> Path:
    """``folder/name`` (RELION 3.1: one optics group) over ``folder/stack.mrcs``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_stack(folder / "stack.mrcs", blobs(n, box, seed) if images is None else images, apix_A)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnImagePixelSize": [apix_A],
            "rlnImageSize": [box],
            "rlnImageDimensionality": [2],
        }
    )
    cols: dict[str, object] = {
        "rlnImageName": [f"{i + 1:06d}@stack.mrcs" for i in range(n)],
        "rlnOpticsGroup": [1] * n,
    }
    if ctf:
        du = np.linspace(10000.0, 20000.0, n)
        cols.update(rlnDefocusU=du, rlnDefocusV=du - 100.0, rlnDefocusAngle=np.full(n, 10.0))
    path = folder / name
    starfile.write({"optics": optics, "particles": pd.DataFrame(cols)}, path)
    return path


def tree_digest(folder: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``."""
    root = Path(folder)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``twodclass argv`` here; argparse's exit becomes the status. A traceback (an
    exception escaping ``main``) fails the calling test."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error(rc: int, err: str, *needles: str, status: int = 2) -> str:
    """The status, one error line (the last line of stderr), no traceback; the line holds
    every needle. Returns the line."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "no error line"
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    for n in needles:
        assert n in errors[0], (n, errors[0])
    assert rc == status, (rc, err)
    return errors[0]


def readonly_fs(monkeypatch, root: str | Path) -> None:
    """Writes (create, open for writing, mkdir, rename) under ``root`` fail with EROFS, as on
    a read-only mount (tests run as root, so permission bits cannot stand in for it)."""
    root_s = os.path.abspath(root)

    def inside(p: object) -> bool:
        try:
            return os.path.abspath(os.fsdecode(p)).startswith(root_s)  # type: ignore[arg-type]
        except TypeError:
            return False

    def erofs(p: object) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))  # type: ignore[arg-type]

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_access = os.replace, os.access

    def fake_open(file, mode="r", *a, **k):
        if inside(file) and any(c in mode for c in "wax+"):
            raise erofs(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise erofs(path)
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):
        if inside(path):
            raise erofs(path)
        return real_mkdir(path, *a, **k)

    def fake_replace(src, dst, *a, **k):
        if inside(dst):
            raise erofs(dst)
        return real_replace(src, dst, *a, **k)

    def fake_access(path, mode, *a, **k):
        if inside(path) and mode & os.W_OK:
            return False
        return real_access(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)
    monkeypatch.setattr(os, "access", fake_access)


def same_result(a: Path, b: Path) -> None:
    """Two finished jobs agree: classes, poses, class averages and their pixel size."""
    from engine.io.mrc import open_stack
    from engine.io.star import read_star

    da, db = (
        read_star(a / "run_data.star")["particles"],
        read_star(b / "run_data.star")["particles"],
    )
    assert (da["rlnClassNumber"] == db["rlnClassNumber"]).all()
    np.testing.assert_allclose(da["rlnAnglePsi"], db["rlnAnglePsi"], atol=1e-3)
    np.testing.assert_allclose(da["rlnOriginXAngst"], db["rlnOriginXAngst"], atol=1e-4)
    ca, pa = open_stack(a / "run_classes.mrcs")
    cb, pb = open_stack(b / "run_classes.mrcs")
    np.testing.assert_allclose(ca, cb, atol=1e-4)
    assert pa == pb

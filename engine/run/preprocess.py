"""Read particles once, streamed: normalise, Fourier-crop to the small box, cache.

The full-size stack is only ever read memory-mapped, a block at a time (several blocks at
once on the process's threads, stored in order). The cropped
particles are kept in RAM when they fit the cache budget (float32, else float16), otherwise in
a float16 memory-mapped file beside the job. With MPI each process keeps only its own
particles (rows ``rank, rank + size, ...``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.core.fourier import fourier_crop, normalise_background, small_box_size
from engine.core.model import Dataset
from engine.core.parallel import map_ordered, process_threads
from engine.io.mrc import release_pages
from engine.io.particles import ParticleSet
from engine.params import ClassifyParams

__all__ = ["prepare_dataset", "cache_budget_bytes", "release_rows", "READ_BLOCK"]

READ_BLOCK = 512


def cache_budget_bytes() -> int:
    """RAM allowed for the cropped-particle cache (``TWODCLASS_CACHE_GB``, default 1 GB).

    Raises ParameterError when the variable is not a finite number >= 0.
    """
    text = os.environ.get("TWODCLASS_CACHE_GB", "1.0")
    try:
        gb = float(text)
    except ValueError:
        gb = float("nan")
    if not (0 <= gb < 1e9):  # NaN, negative, infinite
        from engine.errors import ParameterError

        raise ParameterError(
            f"TWODCLASS_CACHE_GB={text!r} is not a number of gigabytes >= 0 (e.g. 4)"
        )
    return int(gb * 1024**3)


def _allocate(n: int, b: int, cache_dir: Path | None) -> np.ndarray:
    f32 = n * b * b * 4
    if f32 <= cache_budget_bytes():
        return np.empty((n, b, b), dtype=np.float32)
    if f32 // 2 <= cache_budget_bytes() or cache_dir is None:
        return np.empty((n, b, b), dtype=np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"particles_{b}px.f16"
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, b, b))


def release_rows(images: np.ndarray, rows: np.ndarray) -> None:
    """Drop rows ``min(rows)..max(rows)`` of a memory-mapped cache from this process's
    resident memory (no-op for an array in RAM).

    The cache file is a shared mapping, so the pages (written or read) stay in the file and
    the operating system's page cache; a later read maps them in again. Called after each
    block is written or read, so resident memory does not grow with the cache file.
    """
    mm = getattr(images, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or len(rows) == 0:
        return
    row_bytes = images.strides[0]
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = images.ctypes.data - base + int(np.min(rows)) * row_bytes
    stop = min(start + (int(np.max(rows)) - int(np.min(rows)) + 1) * row_bytes, len(mm))
    page = mmap.PAGESIZE
    a = start // page * page
    e = min(-(-stop // page) * page, len(mm))
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(mmap.MADV_DONTNEED, a, e - a)


def prepare_dataset(
    pset: ParticleSet,
    p: ClassifyParams,
    cache_dir: Path | None = None,
    rank: int = 0,
    size: int = 1,
    on_block: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Stream ``pset`` into a :class:`Dataset` on the small box set by ``p.max_res_A``."""
    box, apix = pset.box, pset.apix_A
    b = small_box_size(box, apix, p.max_res_A)
    d_A, _ = p.mask_diameters_A(box, apix)
    bg_radius_px = 0.5 * d_A / apix
    mine = np.arange(rank, len(pset), size)
    images = _allocate(len(mine), b, cache_dir)

    def crop(idx: np.ndarray) -> np.ndarray:
        return fourier_crop(normalise_background(pset.read_images(idx), bg_radius_px), b)

    def store(i: int, cropped: np.ndarray) -> None:
        s = i * READ_BLOCK
        images[s : s + len(cropped)] = cropped
        release_pages()  # the full-size stack never accumulates in RAM
        release_rows(images, np.arange(s, s + len(cropped)))
        if on_block is not None:
            on_block(s + len(cropped), len(mine))

    blocks = [mine[s : s + READ_BLOCK] for s in range(0, len(mine), READ_BLOCK)]
    map_ordered(crop, blocks, process_threads(p), store)
    ctfm = pset.ctf.as_matrix() if (pset.ctf is not None and p.ctf) else None
    return Dataset(
        images=images,
        ctfm=ctfm,
        box=box,
        apix_A=apix,
        b=b,
        n_total=len(pset),
        rank=rank,
        size=size,
        after_read=(lambda rows: release_rows(images, rows)) if _is_mapped(images) else None,
    )


def _is_mapped(images: np.ndarray) -> bool:
    return getattr(images, "_mmap", None) is not None

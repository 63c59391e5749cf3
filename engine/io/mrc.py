"""MRC image stacks: memory-mapped reads, atomic and chunked writes.

Reading maps the data block of the file read-only with ``numpy.memmap`` (the header is
parsed by ``mrcfile``), so opening a stack costs one header read and reading a particle
touches only its pages. Opened stacks are cached per path (LRU of at most
:data:`MAX_OPEN` maps, keyed by path, inode, size and modification time, so a file replaced
by an atomic write is mapped afresh while old arrays stay valid).

Supported modes: 0 (int8), 1 (int16), 2 (float32), 6 (uint16), 12 (float16).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import mrcfile
import mrcfile.utils
import numpy as np

from engine.errors import InputError
from engine.io.atomic import atomic_write

__all__ = [
    "open_stack",
    "stack_info",
    "read_volume",
    "write_stack",
    "new_stack",
    "StackWriter",
    "clear_cache",
    "MAX_OPEN",
    "SUPPORTED_MODES",
]

MAX_OPEN = 128
SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}

_cache: OrderedDict[tuple[str, int, int, int], tuple[np.ndarray, float]] = OrderedDict()
_lock = threading.Lock()


def _header(path: Path) -> tuple[tuple[int, int, int], np.dtype, int, float]:
    """Shape ``(nz, ny, nx)``, data dtype, data offset (bytes) and pixel size (Å)."""
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    try:
        with mrcfile.open(path, mode="r", header_only=True, permissive=False) as m:
            h = m.header
            mode = int(h.mode)
            if mode not in SUPPORTED_MODES:
                raise InputError(
                    path,
                    f"unsupported MRC data mode {mode} (supported: "
                    + ", ".join(f"{k} {v}" for k, v in SUPPORTED_MODES.items())
                    + ")",
                )
            dtype = mrcfile.utils.data_dtype_from_header(h)
            nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
            offset = 1024 + int(h.nsymbt)
            mx = int(h.mx)
            apix = float(h.cella.x) / mx if mx > 0 else 0.0
    except InputError:
        raise
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise InputError(path, f"not a readable MRC file ({exc})") from None
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise InputError(path, f"invalid MRC dimensions {nx} x {ny} x {nz}")
    need = offset + nx * ny * nz * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise InputError(
            path,
            f"MRC file is truncated ({size} bytes, header says "
            f"{nz} images of {ny} x {nx} need {need})",
        )
    # header floats are float32: 3.54 reads as 3.5399999618; round to 6 significant digits
    apix = float(f"{apix:.6g}") if np.isfinite(apix) and apix > 0 else 0.0
    return (nz, ny, nx), dtype, offset, apix


def stack_info(path: str | os.PathLike[str]) -> tuple[int, int, int, float]:
    """``(n, ny, nx, apix_A)`` from the header only (no cache, nothing mapped)."""
    (nz, ny, nx), _, _, apix = _header(Path(path))
    return nz, ny, nx, apix


def open_stack(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """Memory-map an image stack (.mrcs) or a single image / volume (.mrc), read-only.

    Returns
    -------
    array : (n, ny, nx) ndarray
        Read-only view in the file's dtype (int8/int16/float32/uint16/float16);
        a single 2D image gives ``n = 1``.
    apix_A : float
        Pixel size from the header voxel size, 0 if unset.

    Raises
    ------
    InputError
        Missing, unreadable, truncated or non-MRC file, unsupported mode.
    """
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)  # new file = new key
    except OSError:
        key = None
    if key is not None:
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    shape, dtype, offset, apix = _header(p)
    try:
        mapped = np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape)
    except (OSError, ValueError) as exc:
        raise InputError(p, f"cannot map MRC data ({exc})") from None
    arr = mapped.view(np.ndarray)  # plain read-only ndarray (keeps the map alive)
    arr.flags.writeable = False
    if key is not None:
        with _lock:
            _cache[key] = (arr, apix)
            while len(_cache) > MAX_OPEN:
                _cache.popitem(last=False)
    return arr, apix


def release_pages() -> None:
    """Drop the stack pages read so far from this process's resident memory.

    They stay in the operating system's page cache; a later read maps them in again. Called
    after each block when streaming a large stack, so reading never holds the stack in RAM.
    """
    with _lock:
        arrays = [a for a, _ in _cache.values()]
    for a in arrays:
        base: np.ndarray | None = a
        while base is not None and not isinstance(base, np.memmap):
            base = base.base
        mm = getattr(base, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise"):
            with contextlib.suppress(OSError, ValueError):
                mm.madvise(mmap.MADV_DONTNEED)


def clear_cache() -> None:
    """Forget every cached map (the maps close when no array uses them any more)."""
    with _lock:
        _cache.clear()


def read_volume(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """A 3D map as ``(nz, ny, nx)`` float32 (a copy) and its voxel size in Å (0 if unset)."""
    arr, apix = open_stack(path)
    return np.array(arr, dtype=np.float32), apix


def _set_voxel(m: mrcfile.mrcfile.MrcFile, apix_A: float) -> None:
    if apix_A and apix_A > 0:
        m.voxel_size = float(apix_A)


def write_stack(
    path: str | os.PathLike[str], array: np.ndarray, apix_A: float, float16: bool = False
) -> None:
    """Write an image stack atomically.

    Parameters
    ----------
    path : path-like
        Destination (.mrcs).
    array : (n, ny, nx) or (ny, nx) array
        Images; stored as float32 (mode 2), or float16 (mode 12) with ``float16=True``.
    apix_A : float
        Pixel size written to the header voxel size (0 = leave unset).
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"write_stack needs (n, ny, nx) images, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float16 if float16 else np.float32)
    with atomic_write(path) as tmp, mrcfile.new(tmp.path, overwrite=True) as m:
        m.set_data(a)
        m.set_image_stack()
        _set_voxel(m, apix_A)


class StackWriter:
    """A stack being filled block by block (see :func:`new_stack`).

    Attributes
    ----------
    data : (n, ny, nx) memmap
        Write images here (``w.data[i0:i1] = block``) or use :meth:`write`.
    """

    def __init__(self, m: mrcfile.mrcfile.MrcFile) -> None:
        self._m = m
        self.data: np.ndarray = m.data
        self._min = np.inf
        self._max = -np.inf
        self._sum = 0.0
        self._sum2 = 0.0
        self._count = 0

    def write(self, start: int, block: np.ndarray) -> None:
        """Store images ``block`` ``(b, ny, nx)`` at ``start`` and update header statistics."""
        b = np.asarray(block)
        self.data[start : start + b.shape[0]] = b
        if b.size:
            flat = b.reshape(-1).astype(np.float32, copy=False)
            self._min = min(self._min, float(flat.min()))
            self._max = max(self._max, float(flat.max()))
            self._sum += float(flat.sum(dtype=np.float64))
            self._sum2 += float(np.dot(flat, flat))  # float32 BLAS: ample for header stats
            self._count += b.size
        self._release()

    def _release(self) -> None:
        """Write the dirty pages out and drop them from this process (bounded memory)."""
        mm = getattr(self.data, "_mmap", None)
        if mm is None:
            return
        with contextlib.suppress(Exception):
            mm.flush()
            mm.madvise(mmap.MADV_DONTNEED)

    def _finish(self) -> None:
        h = self._m.header
        if self._count:
            mean = self._sum / self._count
            h.dmin, h.dmax, h.dmean = self._min, self._max, mean
            h.rms = float(np.sqrt(max(self._sum2 / self._count - mean * mean, 0.0)))


@contextlib.contextmanager
def new_stack(
    path: str | os.PathLike[str], n: int, box: int, apix_A: float, float16: bool = False
) -> Iterator[StackWriter]:
    """Create an ``(n, box, box)`` stack on disk and fill it in blocks (bounded memory).

    The file appears at ``path`` (atomically) only when the ``with`` block ends without an
    error. Header statistics are accumulated from :meth:`StackWriter.write` calls.
    """
    mode = 12 if float16 else 2
    with atomic_write(path) as tmp:
        with mrcfile.new_mmap(tmp.path, shape=(n, box, box), mrc_mode=mode, overwrite=True) as m:
            m.set_image_stack()
            _set_voxel(m, apix_A)
            w = StackWriter(m)
            yield w
            w._finish()
            m.flush()

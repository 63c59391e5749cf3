"""Atomic file writes: a reader sees the old file or the new one, never half a file.

Every writer writes to a temporary name in the destination folder, flushes it to disk
(``fsync``) and renames it over the destination (``os.replace``, atomic on POSIX within
one file system). The temporary name keeps the destination's suffix, so libraries that
look at extensions (mrcfile, numpy) behave.

Ways to use it::

    with atomic_write("run_model.star") as tmp:      # tmp: os.PathLike (temporary path);
        starfile.write(blocks, tmp.path)              # tmp.path is a pathlib.Path

    with atomic_write("job.json", "w") as f:          # f: an open file object
        json.dump(info, f)

    with atomic_path("x.mrcs") as tmp:                # tmp: a pathlib.Path
        ...
    atomic_write_text("job.json", text); atomic_write_bytes("x.bin", data)

Without ``mode``, the object yielded by :func:`atomic_write` also has ``write()`` (opens
the temporary file lazily in text or binary mode depending on the first write).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_path", "atomic_write_text", "atomic_write_bytes", "AtomicTarget"]


class AtomicTarget(os.PathLike):
    """The temporary path of an atomic write (``os.fspath`` gives it) with a lazy ``write``.

    Attributes
    ----------
    path : Path
        Temporary file (same folder as ``final``), renamed onto ``final`` on success.
    final : Path
        Destination path.
    """

    def __init__(self, path: Path, final: Path) -> None:
        self.path = path
        self.final = final
        self._fh: IO[Any] | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def write(self, data: str | bytes) -> int:
        """Write ``data`` (text or bytes) to the temporary file, opening it on first use."""
        if self._fh is None:
            binary = isinstance(data, (bytes, bytearray, memoryview))
            self._fh = open(
                self.path, "wb" if binary else "w", encoding=None if binary else "utf-8"
            )
        return self._fh.write(data)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without fsync
        pass
    finally:
        os.close(fd)


def _tmp_name(final: Path) -> Path:
    # not tempfile.mkstemp: its files are private (0600); these get the usual umask
    return final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{final.suffix}"


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str | None = None, fsync: bool = True
) -> Iterator[Any]:
    """Write ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if missing.
    mode : str, optional
        ``"w"`` or ``"wb"``: yield an open file object. ``None`` (default): yield an
        :class:`AtomicTarget` (a path-like temporary name, also with ``write``).
    fsync : bool
        Flush the data to disk before the rename (default True).

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(final)
    try:
        if mode is not None:
            if "w" not in mode:
                raise ValueError(f"atomic_write mode must be a write mode, not {mode!r}")
            with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
                yield fh
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
        else:
            target = AtomicTarget(tmp, final)
            try:
                yield target
            finally:
                target._close()
            if not tmp.exists():
                tmp.touch()  # nothing written: an empty file, as open(path, "w") would give
            if fsync:
                _fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary :class:`Path` next to ``path``; renamed onto ``path`` on success."""
    with atomic_write(path) as target:
        yield target.path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as target:
        target.path.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as target:
        target.path.write_bytes(data)

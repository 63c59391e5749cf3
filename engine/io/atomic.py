"""Atomic file writes: a reader sees the old file or the new one, never half a file.

Every writer writes to a temporary name in the destination folder, flushes it to disk
(``fsync``) and renames it over the destination (``os.replace``, atomic on POSIX within
one file system). The temporary name keeps the destination's suffix, so libraries that
look at extensions (mrcfile, numpy) behave.

Ways to use it::

    with atomic_write("model.star") as tmp:      # tmp: os.PathLike (temporary path);
        starfile.write(blocks, tmp.path)              # tmp.path is a pathlib.Path

    with atomic_write("info.json", "w") as f:          # f: an open file object
        json.dump(info, f)

    with atomic_path("x.mrcs") as tmp:                # tmp: a pathlib.Path
        ...
    atomic_write_text("info.json", text); atomic_write_bytes("x.bin", data)

Without ``mode``, the object yielded by :func:`atomic_write` also has ``write()`` (opens
the temporary file lazily in text or binary mode depending on the first write).

A writer killed outright (kill -9, power loss) leaves its temporary file behind; a command
that takes a folder over removes those of dead writers (:func:`remove_stale_temps`). An
``OSError`` of the write names the destination, not the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "AtomicTarget",
    "remove_stale_temps",
]


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
    except OSError as exc:  # a full disk or an I/O error must not pass for success
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise  # (EINVAL, ENOTSUP: a file system without fsync)
    finally:
        os.close(fd)


def _tmp_name(final: Path) -> Path:
    # not tempfile.mkstemp: its files are private (0600); these get the usual umask
    return final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{final.suffix}"


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<suffix>\.[^.]*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Remove the temporary files of atomic writes whose writer is gone (killed mid-write).

    Only names of the form :func:`atomic_write` makes (``.NAME.PID.HEX.tmpSUFFIX``) whose
    process no longer runs are removed; returns them.
    """
    removed: list[Path] = []
    root = Path(folder)
    try:
        entries = list(root.rglob(".*.tmp*") if recursive else root.glob(".*.tmp*"))
    except OSError:
        return removed
    for p in entries:
        m = _TMP_RE.match(p.name)
        if m is None or p.is_dir() or _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None:
            name = exc.filename
            if name is None or os.fsdecode(name) == os.fsdecode(tmp):  # name the destination
                raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(final)) from None
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

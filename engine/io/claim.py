"""One claim per job folder: an exclusive lock file, so two commands never write one folder.

``twodclass run`` (new or ``--resume``) and ``twodclass select`` take the claim of the folder
they write before they look at what it holds, and keep it until they end::

    with claim_folder(job_dir, "twodclass run") as claim:
        ...                          # claim.stale: the holder before us died (or None)

The claim is the file ``job.lock`` (:attr:`engine.io.jobfolder.JobFiles.lock`) holding the
holder's pid, host,
command and start time, locked with ``flock`` for as long as the holder lives. The
operating system releases that lock when the holder ends in any way (kill -9 included),
so a lock file that is present but not locked is *stale*: the next claim takes it over
and reports the dead holder. A second command while the holder lives is refused with one
line naming it (pid and host).

:func:`job_status` turns the ``status`` that ``job.json`` records into what is true now: a
job that says "running" while nobody holds its folder was interrupted (killed, or the
machine went down) and can be resumed.

:func:`prepare_output_dir` creates an output folder or says in one line why it cannot
(a file in the way, a read-only file system, no permission).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import InputError, os_error_message
from engine.io.jobfolder import JobFiles

__all__ = [
    "FolderClaim",
    "claim_folder",
    "holder",
    "job_status",
    "prepare_output_dir",
]


def _read_info(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        info = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(info: dict[str, Any]) -> str:
    what = info.get("command") or "another twodclass command"
    pid, host = info.get("pid", "?"), info.get("host", "?")
    since = f", since {info['started']}" if info.get("started") else ""
    return f"{what} (pid {pid} on {host}{since})"


class FolderClaim:
    """The exclusive claim of a folder (see the module doc); use :func:`claim_folder`.

    Attributes
    ----------
    folder : Path
    path : Path
        The lock file.
    stale : dict or None
        What the lock file said about an earlier holder that ended without releasing it
        (pid, host, command, started), or None.
    """

    def __init__(self, folder: str | os.PathLike[str], command: str) -> None:
        self.folder = Path(folder)
        self.path = JobFiles(self.folder).lock
        self.command = command
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def acquire(self) -> FolderClaim:
        """Take the claim, or raise :class:`InputError` naming the living holder."""
        for _ in range(100):  # retry only while holders release concurrently
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(
                    self.folder, f"cannot lock the folder ({os_error_message(exc)})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_info(fd)
                for _ in range(50):  # the holder writes who it is just after locking
                    if info:
                        break
                    time.sleep(0.01)
                    info = _read_info(fd)
                os.close(fd)
                raise InputError(
                    self.folder,
                    f"in use by {_describe(info)}; wait for it to end, or choose another folder",
                ) from None
            except OSError as exc:  # a file system without locks: fall back on pid and host
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                info = _read_info(fd)
                if info and _alive(info):
                    os.close(fd)
                    raise InputError(
                        self.folder,
                        f"in use by {_describe(info)}; wait for it to end, or choose "
                        "another folder",
                    ) from None
            try:  # the file we locked may have been released and removed meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = _read_info(fd)
            self.stale = info or None
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": self.command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            try:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, (json.dumps(me) + "\n").encode("utf-8"))
            except OSError as exc:
                os.close(fd)
                raise InputError(
                    self.folder, f"cannot lock the folder ({os_error_message(exc)})"
                ) from None
            self._fd = fd
            return self
        raise InputError(self.folder, "cannot lock the folder (its lock file keeps changing)")

    def release(self) -> None:
        """Give the claim back: remove the lock file, then unlock it."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderClaim:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def claim_folder(folder: str | os.PathLike[str], command: str) -> Iterator[FolderClaim]:
    """Hold the claim of ``folder`` (which must exist) for the ``with`` block."""
    claim = FolderClaim(folder, command).acquire()
    try:
        yield claim
    finally:
        claim.release()


def _alive(info: dict[str, Any]) -> bool:
    """Whether the process a lock file names is alive (unknown on another host: True)."""
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Who holds the claim of ``folder`` now (pid, host, command, started), or None."""
    path = JobFiles(Path(folder)).lock
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd) or {"pid": "?", "host": "?"}
        except OSError:  # no locks on this file system: trust pid and host
            info = _read_info(fd)
            return info if info and _alive(info) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def job_status(folder: str | os.PathLike[str], recorded: str | None) -> str:
    """The status of a job now: ``recorded`` (job.json's), except that a job recorded as
    ``running`` whose folder nobody holds is ``interrupted``."""
    status = str(recorded or "unknown")
    if status == "running" and holder(folder) is None:
        return "interrupted"
    return status


def prepare_output_dir(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Create the output folder ``path`` (and its parents), or raise one clear line why not.

    Raises
    ------
    InputError
        ``path`` (or a folder above it) is a file, cannot be created or is not writable
        (read-only file system, no permission).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(p, f"{option} must be a folder, but this is a file")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(p, f"cannot create the folder: {parent} is a file")
            break
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(p, f"cannot create the folder ({_reason(exc)})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(p, "cannot write into this folder (read-only or no permission)")
    return p


def _reason(exc: OSError) -> str:
    msg = os_error_message(exc)
    return msg.split(": ", 1)[1] if exc.filename is not None and ": " in msg else msg

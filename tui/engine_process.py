"""Running the engine as a separate process and reading its ``--progress jsonl`` events.

The UI never runs the classification in its own process: it starts
``python -m engine run ... --progress jsonl`` with ``asyncio.create_subprocess_exec`` and
turns each stdout line into a message. Parsing and command building are pure functions.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from engine.params import ClassifyParams

__all__ = [
    "EngineEvent",
    "EngineLog",
    "EngineExited",
    "parse_line",
    "run_argv",
    "resume_argv",
    "engine_command",
    "stream_process",
]


@dataclass
class EngineEvent(Message):
    """One JSON event of the engine (``kind`` = its ``"event"`` field)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineLog(Message):
    """A line the engine printed that is not an event (stderr, or non-JSON stdout)."""

    line: str
    stream: str = "stderr"


@dataclass
class EngineExited(Message):
    """The engine process ended (``cancelled`` when the UI terminated it)."""

    returncode: int | None
    cancelled: bool = False


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """``'{"event": "progress", ...}'`` -> ``("progress", {...})``; None if not an event."""
    s = line.strip()
    if not s.startswith("{"):
        return None
    try:
        d = json.loads(s)
    except ValueError:
        return None
    if not isinstance(d, dict) or "event" not in d:
        return None
    return str(d["event"]), d


def engine_command() -> list[str]:
    """How the engine is started: this Python, ``-m engine`` (no console script needed)."""
    return [sys.executable, "-m", "engine"]


def run_argv(
    particles: Path, job_dir: Path, params: ClassifyParams, engine: list[str] | None = None
) -> list[str]:
    """The command line of a new run."""
    return [
        *(engine or engine_command()),
        "run",
        str(particles),
        "-o",
        str(job_dir),
        "--progress",
        "jsonl",
        *params.to_cli_args(changed_only=True),
    ]


def resume_argv(job_dir: Path, engine: list[str] | None = None) -> list[str]:
    """The command line that continues a cancelled job from its checkpoint."""
    return [*(engine or engine_command()), "run", "--resume", str(job_dir), "--progress", "jsonl"]


async def stream_process(
    argv: list[str],
    post: Callable[[Message], Any],
    cwd: Path | None = None,
    on_start: Callable[[asyncio.subprocess.Process], Awaitable[None] | None] | None = None,
) -> int | None:
    """Run ``argv``, post an :class:`EngineEvent` / :class:`EngineLog` per line.

    On cancellation (the worker is cancelled) the process is terminated (then killed after 5 s)
    and :class:`EngineExited` is posted with ``cancelled=True``.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=None if cwd is None else str(cwd),
        limit=1 << 22,
    )
    if on_start is not None:
        r = on_start(proc)
        if asyncio.iscoroutine(r):
            await r

    async def pump(stream: asyncio.StreamReader, name: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\n")
            ev = parse_line(line) if name == "stdout" else None
            if ev is not None:
                post(EngineEvent(*ev))
            elif line.strip():
                post(EngineLog(line, name))

    assert proc.stdout is not None and proc.stderr is not None
    tasks = [
        asyncio.ensure_future(pump(proc.stdout, "stdout")),
        asyncio.ensure_future(pump(proc.stderr, "stderr")),
    ]
    try:
        await asyncio.gather(*tasks)
        rc = await proc.wait()
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                proc.kill()
        post(EngineExited(proc.returncode, cancelled=True))
        raise
    post(EngineExited(rc, cancelled=False))
    return rc

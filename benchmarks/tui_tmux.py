"""Measure the class browser in a real terminal (tmux): time to first draw, key latency.

``python benchmarks/tui_tmux.py JOBDIR [--size 120x40] [--repeats 10]``

Starts ``twodclass browse JOBDIR`` in a detached tmux session, polls ``tmux capture-pane``
until the grid and status line are drawn, then sends arrow keys and space and times how long
until the screen shows the change (class line / selection count). Includes tmux's own
round trip (send-keys + capture-pane, a few ms).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time

__all__ = ["main"]

SESSION = "twodclass-bench"


def _cap() -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True
    ).stdout


def _class_line(c: str) -> str | None:
    m = re.search(r"Class (\d+):", c)
    return m.group(1) if m else None


def _selected(c: str) -> str | None:
    m = re.search(r"Selected (\d+)/", c)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job_dir")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--command", default=None, help="default: twodclass browse JOBDIR")
    args = ap.parse_args(argv)
    if shutil.which("tmux") is None:
        print("tmux is not installed", file=sys.stderr)
        return 2
    w, h = (int(v) for v in args.size.split("x"))
    cmd = args.command or f"{sys.executable} -m engine browse {args.job_dir}"
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            str(w),
            "-y",
            str(h),
            cmd + "; sleep 600",
        ],
        check=True,
    )
    drawn = auto = None
    try:
        while time.perf_counter() - t0 < 60:
            c = _cap()
            if drawn is None and "Selected 0/" in c and "#1 " in c:
                drawn = time.perf_counter() - t0
            if drawn is not None and "auto:" in c:
                auto = time.perf_counter() - t0
                break
            time.sleep(0.01)
        if drawn is None or auto is None:
            print("the browser did not appear within 60 s:\n" + _cap(), file=sys.stderr)
            return 1
        print(
            f"browser drawn (grid + status line): {drawn:.2f} s after launch; "
            f"automatic suggestion shown: {auto:.2f} s"
        )
        lat: dict[str, list[float]] = {k: [] for k in ("Right", "Down", "Left", "Up", "space")}
        for _ in range(args.repeats):
            for key in ("Right", "Down", "space", "Left", "Up", "space"):
                probe = _selected if key == "space" else _class_line
                before = probe(_cap())
                t = time.perf_counter()
                subprocess.run(["tmux", "send-keys", "-t", SESSION, key])
                while time.perf_counter() - t < 5 and probe(_cap()) == before:
                    time.sleep(0.003)
                lat[key].append(time.perf_counter() - t)
                time.sleep(0.05)
        for k, v in lat.items():
            print(
                f"{k:6s}: median {1000 * statistics.median(v):.0f} ms, "
                f"max {1000 * max(v):.0f} ms (n={len(v)})"
            )
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``twodclass tui [PARTICLES]``: set up a job, watch it run, browse and select classes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "prepare_graphics"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tui",
        help="terminal UI: set up a job, watch it run, browse and select classes",
        description="Interactive terminal UI (works over SSH): a form of every parameter, "
        "a live view of the run (progress, class averages, log, cancel/resume) "
        "and the class browser.",
    )
    p.add_argument(
        "particles",
        type=Path,
        nargs="?",
        default=None,
        metavar="PARTICLES",
        help="input particles (.star or cryoSPARC .cs); or pick one in the UI",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="JOBDIR",
        help="job folder for the run (default: a new folder in the current one)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="JOBDIR",
        help="continue a cancelled job and watch it",
    )
    p.add_argument(
        "--halfblock",
        action="store_true",
        help="draw images with half-block characters even if the terminal "
        "supports Kitty/Sixel graphics",
    )
    return p


def prepare_graphics(force_halfblock: bool) -> None:
    """Pick the image renderer before the app starts (textual-image probes the terminal once)."""
    from tui.image import FORCE_HALFBLOCK_ENV, graphics_renderer

    if force_halfblock:
        os.environ[FORCE_HALFBLOCK_ENV] = "1"
    graphics_renderer()


def run(args: argparse.Namespace) -> int:
    prepare_graphics(args.halfblock)
    from tui.app import TwodclassApp

    if args.resume is not None:
        app = TwodclassApp("resume", job_dir=args.resume)
    else:
        app = TwodclassApp("job", particles=args.particles, job_dir=args.output)
    return int(app.run() or 0)

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
    add_image_options(p)
    return p


RENDERER_CHOICES = ("auto", "kitty", "sixel", "24bit", "256", "16")


def add_image_options(p: argparse.ArgumentParser) -> None:
    """``--renderer`` and ``--halfblock`` (shared by ``tui`` and ``browse``)."""
    p.add_argument(
        "--renderer",
        choices=RENDERER_CHOICES,
        default="auto",
        help="how to draw images: auto (default: Kitty or Sixel graphics when the terminal "
        "answers that it has them and the `graphics` extra is installed, else half-block "
        "characters in the colours the terminal announces), or force one: kitty, sixel, "
        "or half-blocks in 24bit, 256 or 16 colours",
    )
    p.add_argument(
        "--halfblock",
        action="store_true",
        help="draw images with half-block characters even if the terminal "
        "supports Kitty/Sixel graphics",
    )


def prepare_graphics(force_halfblock: bool, renderer: str = "auto") -> None:
    """Pick the image renderer before the app starts (the terminal is asked once)."""
    from tui.terminal import RENDERER_ENV, prepare

    if renderer != "auto":
        os.environ[RENDERER_ENV] = renderer
    prepare(force_halfblock)


def run(args: argparse.Namespace) -> int:
    prepare_graphics(args.halfblock, getattr(args, "renderer", "auto"))
    from tui.app import TwodclassApp

    if args.resume is not None:
        app = TwodclassApp("resume", job_dir=args.resume)
    else:
        app = TwodclassApp("job", particles=args.particles, job_dir=args.output)
    return int(app.run() or 0)

"""``twodclass browse JOBDIR``: browse, select and save the classes of a job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "browse",
        help="browse the class averages of a job and select classes (terminal UI)",
        description="Show every class average of JOBDIR with its particle count and resolution; "
        "select classes (space, or a for the automatic suggestion) and save them (s) "
        "as particles_selected.star, classes_selected.mrcs/.star and selection.json. "
        "The particle filter (on by default, f toggles it) leaves out the particles "
        "that do not look like their class-mates and writes them to "
        "particles_removed.star, as `twodclass select` does.",
    )
    p.add_argument("job_dir", type=Path, metavar="JOBDIR", help="a twodclass job folder")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the selection here instead of into JOBDIR",
    )
    from tui.cli import add_image_options

    add_image_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from tui.cli import prepare_graphics

    job_dir: Path = args.job_dir
    from engine.io.jobfolder import JobFiles, load_job

    files = JobFiles.of(job_dir)
    if not files.model.exists() or not files.classes.exists():
        from engine.errors import InputError

        raise InputError(
            job_dir,
            "not a twodclass job folder (run_model.star and "
            "run_classes.mrcs are missing); run `twodclass run` first",
        )
    load_job(job_dir, read_data=False)  # a damaged job is one line here, not a broken UI
    prepare_graphics(args.halfblock, args.renderer)
    from tui.app import TwodclassApp

    app = TwodclassApp("browse", job_dir=job_dir, out_dir=args.output)
    return int(app.run() or 0)

"""``twodclass run``: 2D classification of a particle STAR/.cs file into a job folder."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from engine.errors import ParameterError
from engine.params import ClassifyParams, param_specs
from engine.run.job import run_job

__all__ = ["add_parser", "run", "add_param_arguments", "params_from_args"]


def add_param_arguments(p: argparse.ArgumentParser) -> None:
    """One option per :class:`ClassifyParams` field, grouped by level."""
    groups = {
        lvl: p.add_argument_group(f"{lvl} parameters") for lvl in ("basic", "advanced", "compute")
    }
    for s in param_specs():
        g = groups[s.level]
        unit = f" [{s.unit}]" if s.unit else ""
        text = s.help.replace("%", "%%")  # argparse formats help with %
        if s.type is bool:
            g.add_argument(
                s.flag,
                dest=s.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{s.label}: {text} (default: {'on' if s.default else 'off'})",
            )
        else:
            dflt = "auto" if s.default is None else s.default
            g.add_argument(
                s.flag,
                dest=s.name,
                type=s.type,
                default=None,
                metavar=s.unit.upper() if s.unit in ("Å", "deg") else None,
                help=f"{s.label}{unit}: {text} (default: {dflt})",
            )


def params_from_args(
    args: argparse.Namespace, base: ClassifyParams | None = None
) -> ClassifyParams:
    d = (base or ClassifyParams()).to_dict()
    for s in param_specs():
        v = getattr(args, s.name, None)
        if v is not None:
            d[s.name] = v
    return ClassifyParams.from_dict(d)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="classify particles (STAR or cryoSPARC .cs) into 2D classes",
        description="2D classification by maximum likelihood with online EM (cryoSPARC's "
        "schedule). Writes run_data.star, run_model.star and run_classes.mrcs "
        "into the job folder (see README, 'Output files'). Run under "
        "`mpirun -np N` to split the particles over N processes.",
    )
    p.add_argument("particles", nargs="?", help="input particles (.star RELION 3.0/3.1+, .cs)")
    p.add_argument("-o", "--output", metavar="JOBDIR", help="job folder to write")
    p.add_argument(
        "--resume",
        metavar="JOBDIR",
        help="continue an interrupted job from its last finished iteration",
    )
    p.add_argument(
        "--project-dir", metavar="DIR", help="folder that relative image paths are resolved against"
    )
    p.add_argument(
        "--progress",
        choices=("bar", "jsonl", "none"),
        default=None,
        help="bar with ETA (default on a terminal), one JSON event per line, or none",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing into a job folder that already holds a job",
    )
    add_param_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    _install_sigterm()
    mode = args.progress or ("bar" if sys.stderr.isatty() else "none")
    if args.resume:
        if args.particles or args.output:
            raise ParameterError("--resume JOBDIR takes no particles or -o")
        return run_job(
            None,
            Path(args.resume),
            None,
            progress=mode,
            resume=True,
            project_dir=args.project_dir,
            overrides=args,
        )
    if not args.particles or not args.output:
        raise ParameterError("need PARTICLES and -o JOBDIR (or --resume JOBDIR)")
    params = params_from_args(args)
    return run_job(
        Path(args.particles),
        Path(args.output),
        params,
        progress=mode,
        project_dir=args.project_dir,
        overwrite=args.overwrite,
    )


def _install_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        pass

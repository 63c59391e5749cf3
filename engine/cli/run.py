"""``twodclass run``: 2D classification of a particle STAR/.cs file into a job folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import ParameterError
from engine.params import ClassifyParams, param_specs
from engine.run.job import run_job
from engine.run.progress import MODES, default_mode

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
                type=s.parser(),
                default=None,
                metavar=s.unit.upper() if s.unit in ("Å", "deg") else None,
                help=f"{s.label}{unit}: {text} (default: {dflt})",
            )


def given_params(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters given on the command line (name -> value)."""
    return {
        s.name: getattr(args, s.name)
        for s in param_specs()
        if getattr(args, s.name, None) is not None
    }


def params_from_args(
    args: argparse.Namespace, base: ClassifyParams | None = None
) -> ClassifyParams:
    d = (base or ClassifyParams()).to_dict()
    d.update(given_params(args))
    return ClassifyParams.from_dict(d)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="classify particles (STAR or cryoSPARC .cs) into 2D classes",
        description="2D classification by maximum likelihood with online EM (cryoSPARC's "
        "schedule). Writes run_data.star, run_model.star and run_classes.mrcs "
        "into the job folder (see README, 'Output files'). Run under "
        "`mpirun -np N` to split the particles over N processes.",
        epilog="Exit status: 0 finished; 2 an error, explained in one line (bad input or "
        "option, job folder in use, input changed since the job started...); 130/143/129 "
        "stopped by ctrl+c/SIGTERM/SIGHUP: continue with --resume JOBDIR. One command at a "
        "time per job folder (job.lock).",
    )
    p.add_argument("particles", nargs="?", help="input particles (.star RELION 3.0/3.1+, .cs)")
    p.add_argument("-o", "--output", metavar="JOBDIR", help="job folder to write")
    p.add_argument(
        "--resume",
        metavar="JOBDIR",
        help="continue an interrupted job from its last finished iteration; refused when the "
        "input or a parameter given here differs from the job's (--threads may change)",
    )
    p.add_argument(
        "--project-dir", metavar="DIR", help="folder that relative image paths are resolved against"
    )
    p.add_argument(
        "--progress",
        choices=MODES,
        default=None,
        help="bar with ETA (default on a terminal); plain: one line per iteration and every "
        "warning (default otherwise, e.g. in a batch job's log); jsonl: one JSON event per "
        "line on stdout; none: warnings and errors only",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the job (or other run_* files) in JOBDIR; an input file is never "
        "overwritten, and a job folder in use by another run is refused",
    )
    add_param_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    mode = args.progress or default_mode()
    if args.resume:
        if args.particles or args.output:
            raise ParameterError("--resume JOBDIR takes no particles or -o")
        if args.overwrite:
            raise ParameterError("--resume continues a job; --overwrite starts a new one: not both")
        return run_job(
            None,
            Path(args.resume),
            None,
            progress=mode,
            resume=True,
            project_dir=args.project_dir,
            overrides=given_params(args),
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

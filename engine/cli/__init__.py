"""The ``twodclass`` command: one entry point, one subcommand per job.

The engine's subcommands live in their own modules (``engine.cli.*``). Other packages add
theirs through the ``twodclass.commands`` entry-point group (the terminal UI registers
``tui`` and ``browse`` in pyproject.toml), so the engine never imports a face. Errors of
:class:`engine.errors.TwodclassError` print one line ``twodclass: error: ...`` and exit with
status 2 (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from engine import __version__
from engine.errors import TwodclassError

__all__ = ["main", "build_parser"]

# subcommand name -> module with ``add_parser(subparsers)`` and ``run(args) -> int``
SUBCOMMANDS = {
    "run": "engine.cli.run",
    "demo": "engine.cli.demo",
    "simulate": "engine.cli.simulate",
    "select": "engine.cli.select",
}
#: entry-point group through which installed packages add subcommands (same interface)
ENTRY_POINT_GROUP = "twodclass.commands"


def subcommand_modules() -> dict[str, str]:
    """Every subcommand: the engine's, then those registered by installed packages."""
    from importlib.metadata import entry_points

    out = dict(SUBCOMMANDS)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        out.setdefault(ep.name, ep.value)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twodclass",
        description="Fast maximum-likelihood 2D classification for cryo-EM particles.",
    )
    parser.add_argument("--version", action="version", version=f"twodclass {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in subcommand_modules().values():
        mod = importlib.import_module(modname)
        p = mod.add_parser(sub)
        p.set_defaults(_module=modname)
    return parser


def _limit_blas_threads(argv: list[str]) -> None:
    """Honour ``--threads N`` in BLAS too: its thread count is read when numpy loads, so it
    is set here, before any subcommand module imports numpy. Inside the engine's block
    workers BLAS runs on one thread (:mod:`engine.core.parallel`); this caps it elsewhere."""
    n = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    if n is not None and n.isdigit() and int(n) > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, n)


def main(argv: list[str] | None = None) -> int:
    _limit_blas_threads(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except TwodclassError as exc:
        print(f"twodclass: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "twodclass: interrupted; resume with `twodclass run --resume JOBDIR`", file=sys.stderr
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

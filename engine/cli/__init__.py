"""The ``twodclass`` command: one entry point, one subcommand per job.

The engine's subcommands live in their own modules (``engine.cli.*``). Other packages add
theirs through the ``twodclass.commands`` entry-point group (the terminal UI registers
``tui``, ``browse`` and ``report`` in pyproject.toml), so the engine never imports a face.

Every command fails the same way: a bad option, a :class:`engine.errors.TwodclassError`, or
an ``OSError`` / ``ValueError`` that escapes (a file that cannot be written, a full disk)
prints one line ``twodclass: error: ...`` and exits with status 2, without a traceback
(``TWODCLASS_DEBUG=1`` shows it). ctrl+c, SIGTERM and SIGHUP stop a command cleanly (its
files stay whole) with exit status 128 + the signal number (130, 143, 129).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Any, NoReturn

from engine import __version__
from engine.errors import Interrupted, TwodclassError, error_line

__all__ = ["main", "build_parser", "OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line naming the option (usage: ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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
    parser = OneLineParser(
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


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def install_signal_handlers() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (as ctrl+c raises KeyboardInterrupt), so
    the command stops between two file writes and records its state. A signal that was
    ignored when the process started (``nohup``) stays ignored. Returns the previous
    handlers (for :func:`restore_signal_handlers`)."""
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN:
                continue
            signal.signal(sig, _raise_interrupted)
            previous[sig] = old
        except (ValueError, OSError):  # not in the main thread
            pass
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError, TypeError):  # pragma: no cover
            pass


def main(argv: list[str] | None = None) -> int:
    _limit_blas_threads(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = os.environ.get("TWODCLASS_DEBUG", "") not in ("", "0")
    # the terminal UI handles its own signals; every engine command stops cleanly on them
    previous = {} if args._module.startswith("tui.") else install_signal_handlers()
    try:
        mod = importlib.import_module(args._module)
        return int(mod.run(args) or 0)
    except KeyboardInterrupt as exc:
        hint = getattr(exc, "hint", "")
        print(f"twodclass: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return exc.exit_status if isinstance(exc, Interrupted) else 128 + signal.SIGINT
    except (TwodclassError, OSError, ValueError) as exc:
        if debug:
            raise
        print(f"twodclass: error: {error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        restore_signal_handlers(previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

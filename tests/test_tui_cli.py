"""The ``tui`` / ``browse`` subcommands: lazy imports, arguments, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.errors import InputError


def test_add_parser_does_not_import_textual():
    code = (
        "import argparse, sys\n"
        "import tui.cli, tui.cli_browse\n"
        "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
        "tui.cli.add_parser(sub); tui.cli_browse.add_parser(sub)\n"
        "a = p.parse_args(['browse', 'JOB', '-o', 'OUT'])\n"
        "assert str(a.job_dir) == 'JOB' and str(a.output) == 'OUT'\n"
        "a = p.parse_args(['tui', 'p.star', '-o', 'J'])\n"
        "assert str(a.particles) == 'p.star' and str(a.output) == 'J'\n"
        "bad = [m for m in sys.modules if m.startswith(('textual', 'numba'))]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_browse_a_folder_without_a_job_says_so(tmp_path):
    import argparse

    from tui import cli_browse

    args = argparse.Namespace(job_dir=tmp_path, output=None, halfblock=True)
    with pytest.raises(InputError, match="not a twodclass job folder"):
        cli_browse.run(args)

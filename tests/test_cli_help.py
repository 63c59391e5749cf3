"""Every subcommand's --help works and names its options (argparse formats help with %)."""

from __future__ import annotations

import pytest

from engine.cli import SUBCOMMANDS, main
from engine.params import param_specs


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"twodclass {name}" in capsys.readouterr().out


def test_run_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for s in param_specs():
        assert s.flag in out, s.flag

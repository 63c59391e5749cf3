"""Every subcommand's --help works and names its options (argparse formats help with %)."""

from __future__ import annotations

import pytest

from engine.cli import main, subcommand_modules
from engine.params import param_specs


def test_the_terminal_ui_registers_its_subcommands():
    """The TUI's subcommands come from the installed package's entry points (the engine
    imports no face)."""
    mods = subcommand_modules()
    assert mods["tui"] == "tui.cli" and mods["browse"] == "tui.cli_browse"
    assert mods["report"] == "tui.report"
    assert {"run", "demo", "simulate", "select"} <= set(mods)


def test_the_engine_imports_no_face():
    import ast
    from pathlib import Path

    import engine

    root = Path(engine.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in ("tui", "scipion_2dclass"), (path, name)


@pytest.mark.parametrize("name", sorted(subcommand_modules()))
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"twodclass {name}" in out
    assert "%%" not in out  # a doubled % where argparse does not format (descriptions)


def test_run_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for s in param_specs():
        assert s.flag in out, s.flag


def test_parameters_round_trip_through_the_command_line():
    """ClassifyParams.to_cli_args (the faces' one way to build a command line) parses back to
    the same parameters, floats in full precision, booleans both ways."""
    import argparse

    from engine.cli import run
    from engine.params import ClassifyParams

    p = ClassifyParams(
        n_classes=7, max_res_A=6.123456789, diameter_A=100.1 + 0.2, force_max=False, ctf=True
    )
    parser = argparse.ArgumentParser()
    run.add_parser(parser.add_subparsers())
    for changed_only in (False, True):
        args = p.to_cli_args(changed_only=changed_only)
        assert run.params_from_args(parser.parse_args(["run", "in.star", "-o", "j", *args])) == p
    assert "--ctf" not in p.to_cli_args(changed_only=True)  # the default
    assert "--ctf" in p.to_cli_args()


def test_mask_defaults_are_computed_once():
    from engine.params import ClassifyParams, mask_diameters_A

    assert mask_diameters_A(100, 2.0) == (170.0, 200.0)  # 85% of 200 Å; 1.2x capped at box
    assert mask_diameters_A(100, 2.0, 100.0) == (100.0, 120.0)
    assert mask_diameters_A(100, 2.0, 100.0, 90.0) == (100.0, 100.0)  # never inside
    assert ClassifyParams(diameter_A=80.0).mask_diameters_A(64, 2.0) == (80.0, 96.0)

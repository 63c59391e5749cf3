"""Catalogue of bad input to ``twodclass run``: files (STAR, MRC, .cs) and options.

Every case asserts: exit status 2, exactly one ``twodclass: error:`` line (the last line of
stderr) that names the file, row or option at fault, no traceback, the input folder
byte-identical (sha256 of every file), and no job written (the job folder is not created).
Job folders, resume and select are in ``test_bad_input_jobs.py``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers_bad import (
    TINY,
    assert_one_error,
    blobs,
    cli,
    tree_digest,
    write_particles,
)

Builder = Callable[[Path], list]


from tests.helpers_bad_inputs import (  # noqa: E402
    _cs,
    _cs_garbage,
    _cut_mid_row,
    _edit_row,
    _empty_table,
    _field,
    _folder_as_input,
    _format2_truncated,
    _mode4_stack,
    _nan_pixel,
    _no_pixel_size,
    _non_square,
    _optics_pixel,
    _Payload,
    _pickled_cs,
    _run,
    _stack_edit,
    _stack_not_mrc,
    _star,
    _truncated_stack,
    _two_boxes,
    _two_optics_groups_no_column,
)

CASES: list[tuple[str, Builder, tuple[str, ...]]] = [
    # --------------------------------------------------------------- STAR files
    ("missing-file", lambda t: _run(t / "in" / "nope.star"), ("nope.star", "file not found")),
    ("folder-as-input", lambda t: _run(_folder_as_input(t)), ("d.star", "not a regular file")),
    ("binary-star", lambda t: _run(_star(t, lambda s: "\x00\xff" * 300)), ("particles.star",)),
    ("text-not-star", lambda t: _run(_star(t, lambda s: "hello\nworld\n")), ("particles.star",)),
    ("empty-star", lambda t: _run(_star(t, lambda s: "")), ("particles.star",)),
    (
        "duplicated-column",
        lambda t: _run(_star(t, lambda s: s.replace("_rlnDefocusAngle #5", "_rlnImageName #5"))),
        ("particles.star", "_rlnImageName appears more than once"),
    ),
    ("cut-mid-row", lambda t: _run(_star(t, _cut_mid_row)), ("particles.star, row 7", "cut short")),
    (
        "unquoted-space",
        lambda t: _run(_star(t, _edit_row(2, lambda r: r.replace("stack.mrcs", "my stack.mrcs")))),
        ("particles.star, row 2", "quoted"),
    ),
    (
        "row-missing-field",
        lambda t: _run(_star(t, _edit_row(5, lambda r: r.rsplit("\t", 1)[0]))),
        ("particles.star, row 5", "4 values"),
    ),
    (
        "no-image-column",
        lambda t: _run(_star(t, lambda s: s.replace("_rlnImageName", "_rlnMicrographName"))),
        ("particles.star", "no rlnImageName column"),
    ),
    (
        "empty-particle-table",
        lambda t: _run(_star(t, _empty_table)),
        ("particles.star", "particle table is empty"),
    ),
    (
        "bad-image-name",
        lambda t: _run(_star(t, _edit_row(4, lambda r: r.replace("000004@", "abc@")))),
        ("particles.star, row 4", "bad rlnImageName"),
    ),
    (
        "image-number-zero",
        lambda t: _run(_star(t, _edit_row(3, lambda r: r.replace("000003@", "000000@")))),
        ("particles.star, row 3", "NNNNNN >= 1"),
    ),
    (
        "image-past-end",
        lambda t: _run(_star(t, _edit_row(9, lambda r: r.replace("000009@", "000041@")))),
        ("particles.star, row 9", "image 41 is past the end", "40 images"),
    ),
    (
        "stack-not-found",
        lambda t: _run(_star(t, _edit_row(6, lambda r: r.replace("stack.mrcs", "gone.mrcs")))),
        ("particles.star, row 6", "'gone.mrcs' not found"),
    ),
    (
        "unknown-optics-group",
        lambda t: _run(
            _star(t, _edit_row(8, lambda r: r.replace("@stack.mrcs\t1\t", "@stack.mrcs\t7\t")))
        ),
        ("particles.star, row 8", "rlnOpticsGroup 7 is not in the optics table"),
    ),
    (
        "no-group-column-two-groups",
        lambda t: _run(_star(t, _two_optics_groups_no_column)),
        ("particles.star", "no rlnOpticsGroup column", "2 groups"),
    ),
    (
        "pixel-size-zero",
        lambda t: _run(_star(t, _optics_pixel("0.000000"))),
        ("particles.star, row 1", "rlnImagePixelSize 0 is not a valid pixel size"),
    ),
    (
        "pixel-size-negative",
        lambda t: _run(_star(t, _optics_pixel("-1.500000"))),
        ("particles.star, row 1", "rlnImagePixelSize -1.5"),
    ),
    (
        "pixel-size-nan",
        lambda t: _run(_star(t, _optics_pixel("nan"))),
        ("particles.star, row 1", "rlnImagePixelSize nan"),
    ),
    (
        "defocus-not-a-number",
        lambda t: _run(_star(t, _edit_row(11, _field(2, "abc")))),
        ("particles.star, row 11", "defocus_u_A is not a number"),
    ),
    (
        "no-pixel-size-anywhere",
        lambda t: _run(_no_pixel_size(t)),
        ("particles.star", "pixel size unknown"),
    ),
    (
        "two-box-sizes",
        lambda t: _run(_two_boxes(t)),
        ("particles.star, row 1", "differs from 24 px (row 3)", "one box size"),
    ),
    ("non-square-images", lambda t: _run(_non_square(t)), ("particles.star, row 1", "not square")),
    # --------------------------------------------------------------- MRC stacks
    ("truncated-stack", lambda t: _run(_truncated_stack(t)), ("stack.mrcs", "truncated")),
    (
        "unsupported-mode",
        lambda t: _run(_mode4_stack(t)),
        ("stack.mrcs", "unsupported MRC data mode 4"),
    ),
    ("stack-not-mrc", lambda t: _run(_stack_not_mrc(t)), ("stack.mrcs", "not a readable MRC file")),
    (
        "nan-pixels",
        lambda t: _run(_nan_pixel(t)),
        ("particles.star, row 8", "NaN or infinite pixels"),
    ),
    (
        "all-zero-stack",
        lambda t: _run(_stack_edit(t, np.zeros((40, 32, 32), np.float32))),
        ("particles.star", "every image is blank"),
    ),
    # --------------------------------------------------------------- cryoSPARC .cs
    (
        "cs-pickled-payload",
        lambda t: _run(_pickled_cs(t)),
        ("particles.cs", "pickled", "never loaded"),
    ),
    (
        "cs-2d-records",
        lambda t: _run(_cs(t, lambda a: a.reshape(4, 5))),
        ("particles.cs", "2-D array (4 x 5)", "one record per particle"),
    ),
    (
        "cs-plain-array",
        lambda t: _run(_cs(t, lambda a: np.zeros(5))),
        ("particles.cs", "plain float64 array"),
    ),
    ("cs-garbage", lambda t: _run(_cs_garbage(t)), ("particles.cs", "not a cryoSPARC .cs file")),
    (
        "cs-format2-truncated",
        lambda t: _run(_format2_truncated(t)),
        ("particles.cs", "damaged cryoSPARC dataset", "truncated"),
    ),
    (
        "cs-no-blob-path",
        lambda t: _run(_cs(t, lambda a: a[[n for n in a.dtype.names if n != "blob/path"]].copy())),
        ("particles.cs", "no 'blob/path' field"),
    ),
    ("cs-empty", lambda t: _run(_cs(t, lambda a: a[:0])), ("particles.cs", "holds no particles")),
    # --------------------------------------------------------------- options
    (
        "max-res-nan",
        lambda t: _run(write_particles(t / "in"), "--max-res", "nan"),
        ("--max-res", "finite"),
    ),
    (
        "max-res-inf",
        lambda t: _run(write_particles(t / "in"), "--max-res", "inf"),
        ("--max-res", "finite"),
    ),
    (
        "max-res-text",
        lambda t: _run(write_particles(t / "in"), "--max-res", "abc"),
        ("--max-res", "'abc' is not a number"),
    ),
    (
        "uncertainty-nan",
        lambda t: _run(write_particles(t / "in"), "--uncertainty", "nan"),
        ("--uncertainty", "finite"),
    ),
    (
        "tau2-fudge-nan",
        lambda t: _run(write_particles(t / "in"), "--tau2-fudge", "NaN"),
        ("--tau2-fudge", "finite"),
    ),
    (
        "offset-range-inf",
        lambda t: _run(write_particles(t / "in"), "--offset-range", "inf"),
        ("--offset-range", "finite"),
    ),
    (
        "classes-fraction",
        lambda t: _run(write_particles(t / "in"), "--classes", "2.5"),
        ("--classes", "whole number"),
    ),
    (
        "classes-zero",
        lambda t: _run(write_particles(t / "in"), "--classes", "0"),
        ("--classes", ">= 1"),
    ),
    (
        "diameter-negative",
        lambda t: _run(write_particles(t / "in"), "--diameter", "-5"),
        ("--diameter", ">= 1"),
    ),
    (
        "no-iterations",
        lambda t: _run(write_particles(t / "in"), "--online-iters", "0", "--full-passes", "0"),
        ("--online-iters and --full-passes are both 0",),
    ),
    (
        "more-classes-than-particles",
        lambda t: _run(write_particles(t / "in"), "--classes", "41"),
        ("--classes 41 is more than the 40 particles",),
    ),
    (
        "diameter-larger-than-box",
        lambda t: _run(write_particles(t / "in"), "--diameter", "200"),
        ("--diameter 200 Å is larger than the box",),
    ),
    (
        "min-res-align-finer",
        lambda t: _run(write_particles(t / "in"), "--min-res-align", "10"),
        ("--min-res-align must be coarser",),
    ),
    (
        "diameter-outer-smaller",
        lambda t: _run(write_particles(t / "in"), "--diameter", "60", "--diameter-outer", "50"),
        ("--diameter-outer must be >= --diameter",),
    ),
    (
        "progress-unknown",
        lambda t: _run(write_particles(t / "in"), "--progress", "fancy"),
        ("--progress", "invalid choice"),
    ),
    (
        "resume-with-particles",
        lambda t: ["run", write_particles(t / "in"), "--resume", t / "job"],
        ("--resume JOBDIR takes no particles or -o",),
    ),
    ("no-output", lambda t: ["run", write_particles(t / "in")], ("need PARTICLES and -o JOBDIR",)),
    (
        "resume-and-overwrite",
        lambda t: ["run", "--resume", t / "job", "--overwrite"],
        ("not both",),
    ),
    (
        "demo-particles-negative",
        lambda t: ["demo", "-o", t / "job", "--particles", "-5"],
        ("--particles", ">= 100"),
    ),
    (
        "simulate-snr-nan",
        lambda t: ["simulate", "-o", t / "job", "--snr", "nan"],
        ("--snr", "finite"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, capsys):
    _, build, needles = case
    argv = build(tmp_path)
    before = tree_digest(tmp_path / "in") if (tmp_path / "in").exists() else {}
    rc, _, err = cli(argv, capsys)
    assert_one_error(rc, err, *needles)
    after = tree_digest(tmp_path / "in") if (tmp_path / "in").exists() else {}
    assert after == before  # inputs byte-identical
    assert not (tmp_path / "job").exists()  # nothing written, not even an empty folder
    assert not (tmp_path / "EXECUTED").exists()  # no code from a data file ran


@pytest.mark.parametrize(
    "value,needle", [("abc", "'abc' is not a number"), ("-1", "'-1' is not a number"), ("inf", "")]
)
def test_bad_cache_budget(value, needle, tmp_path, capsys, monkeypatch):
    """TWODCLASS_CACHE_GB that is not a number of gigabytes stops before anything is written."""
    monkeypatch.setenv("TWODCLASS_CACHE_GB", value)
    p = write_particles(tmp_path / "in")
    before = tree_digest(tmp_path / "in")
    rc, _, err = cli(_run(p), capsys)
    assert_one_error(rc, err, "TWODCLASS_CACHE_GB", needle)
    assert tree_digest(tmp_path / "in") == before and not (tmp_path / "job").exists()


def test_parameter_problems_are_structured():
    """validate()/validate_for_data() give (option, message); str() is the message."""
    from engine.errors import Problem
    from engine.params import ClassifyParams

    errs = ClassifyParams(max_res_A=float("nan"), n_classes=60, uncertainty=0.5).validate()
    assert [e.option for e in errs] == ["--max-res", "--uncertainty"]
    assert all(isinstance(e, Problem) for e in errs)
    assert str(errs[1]) == "--uncertainty must be >= 1 (got 0.5)"
    errs = ClassifyParams(n_classes=60, diameter_A=500.0).validate_for_data(20, 64, 3.0)
    assert {e.option: str(e) for e in errs} == {
        "--diameter": "--diameter 500 Å is larger than the box (64 px x 3 Å = 192 Å)",
        "--classes": "--classes 60 is more than the 20 particles",
    }
    assert [e.option for e in ClassifyParams(n_classes="7").validate()] == ["--classes"]  # type: ignore[arg-type]
    assert ClassifyParams(n_classes=True).validate()[0].message.startswith("--classes must be")  # type: ignore[arg-type]


def test_pickled_cs_never_runs_code(tmp_path):
    """Reading the crafted file raises InputError and the payload's side effect is absent."""
    from engine.errors import InputError
    from engine.io.cs import load_cs_array

    p = _pickled_cs(tmp_path)
    opened = pickle.loads(pickle.dumps(_Payload(str(tmp_path / "probe"))))
    opened.close()
    assert (tmp_path / "probe").exists()  # the payload does run when unpickled...
    with pytest.raises(InputError, match="pickled"):
        load_cs_array(p)
    assert not (tmp_path / "EXECUTED").exists()  # ...but never when read as particles
    os.remove(tmp_path / "probe")


def test_run_reads_a_cryosparc_format2_file(tmp_path, capsys):
    """A .cs written by cryosparc-tools in its compressed format classifies like format 1."""
    from cryosparc.dataset import Dataset

    p1 = _cs(tmp_path)
    p2 = p1.with_name("particles2.cs")
    Dataset.load(p1).save(p2, format=2)
    assert p2.read_bytes()[:6] == b"\x95CSDAT"
    before = tree_digest(tmp_path / "in")
    for p, out in ((p1, "j1"), (p2, "j2")):
        argv = ["run", p, "-o", tmp_path / out, "--project-dir", tmp_path / "in", *TINY]
        rc, _, err = cli(argv, capsys)
        assert rc == 0, err
    assert tree_digest(tmp_path / "in") == before
    from engine.io.star import read_star

    a = read_star(tmp_path / "j1" / "run_data.star")["particles"]
    b = read_star(tmp_path / "j2" / "run_data.star")["particles"]
    assert a["rlnImageName"].tolist() == b["rlnImageName"].tolist()
    assert (a["rlnClassNumber"] == b["rlnClassNumber"]).all()


def test_some_blank_images_are_reported(tmp_path, capsys):
    """A few blank images: a warning naming how many and the first row, then the run."""
    imgs = blobs(40, 32)
    imgs[[4, 9, 30]] = 0.0
    p = _stack_edit(tmp_path, imgs)
    rc, _, err = cli(_run(p), capsys)
    assert rc == 0, err
    assert err.splitlines() == [
        "twodclass: warning: 3 of 40 images are blank (all pixels equal) (the first at row 5); "
        "they carry no signal and will end up in arbitrary classes"
    ]

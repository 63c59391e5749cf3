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
    write_stack,
)
from tests.helpers_data import make_cs

Builder = Callable[[Path], list]


def _star(tmp: Path, edit: Callable[[str], str], **kw) -> Path:
    p = write_particles(tmp / "in", **kw)
    p.write_text(edit(p.read_text()))
    return p


def _rows(text: str) -> tuple[list[str], list[int]]:
    """Lines of the text and the line indices of the particle rows (in order)."""
    lines = text.split("\n")
    start = lines.index("data_particles")
    rows = [i for i, ln in enumerate(lines) if i > start and "@stack.mrcs" in ln]
    return lines, rows


def _edit_row(k: int, fn: Callable[[str], str]) -> Callable[[str], str]:
    """Apply ``fn`` to particle row ``k`` (1-based)."""

    def edit(text: str) -> str:
        lines, rows = _rows(text)
        lines[rows[k - 1]] = fn(lines[rows[k - 1]])
        return "\n".join(lines)

    return edit


def _run(p: Path, *extra: str) -> list:
    """``run p -o TMP/job`` for an input under ``TMP/in`` (a .cs: project folder ``TMP/in``)."""
    inp = next(a for a in p.parents if a.name == "in")
    project = ["--project-dir", inp] if p.suffix == ".cs" else []
    return ["run", p, "-o", inp.parent / "job", *project, *TINY, *extra]


def _cut_mid_row(text: str) -> str:
    lines, rows = _rows(text)
    return "\n".join(lines[: rows[6]] + [lines[rows[6]][:12]])


def _optics_pixel(value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        return text.replace("\t3.000000\t32\t2", f"\t{value}\t32\t2")

    return edit


def _cs(tmp: Path, mutate: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    p, _ = make_cs(tmp / "in", n=20, box=32, apix_A=3.0)
    if mutate is not None:
        arr = np.load(p)
        with open(p, "wb") as fh:
            np.save(fh, mutate(arr), allow_pickle=True)
    return p


class _Payload:
    """Unpickling this would create the file named in the test: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickled_cs(tmp: Path) -> Path:
    p = _cs(tmp)
    arr = np.load(p)
    obj = np.empty(len(arr), dtype=[("blob/path", "O"), ("blob/idx", "<u4")])
    obj["blob/path"] = [_Payload(str(tmp / "EXECUTED")) for _ in range(len(arr))]
    obj["blob/idx"] = arr["blob/idx"]
    with open(p, "wb") as fh:
        np.save(fh, obj, allow_pickle=True)
    return p


def _format2_truncated(tmp: Path) -> Path:
    from cryosparc.dataset import Dataset

    p = _cs(tmp)
    Dataset.load(p).save(p, format=2)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    return p


def _stack_edit(tmp: Path, images: np.ndarray) -> Path:
    p = write_particles(tmp / "in", n=len(images), box=images.shape[-1])
    write_stack(p.parent / "stack.mrcs", images)
    return p


def _truncated_stack(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    s = p.parent / "stack.mrcs"
    s.write_bytes(s.read_bytes()[:-5000])
    return p


def _mode4_stack(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    s = p.parent / "stack.mrcs"
    raw = bytearray(s.read_bytes())
    raw[12:16] = (4).to_bytes(4, "little")  # MODE 4: complex
    s.write_bytes(bytes(raw))
    return p


def _nan_pixel(tmp: Path) -> Path:
    imgs = blobs(40, 32)
    imgs[7, 3, 3] = np.nan
    return _stack_edit(tmp, imgs)


def _no_pixel_size(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    text = p.read_text().replace("_rlnImagePixelSize #6\n", "").replace("\t3.000000\t32", "\t32")
    text = text.replace("_rlnImageSize #7", "_rlnImageSize #6").replace(
        "_rlnImageDimensionality #8", "_rlnImageDimensionality #7"
    )
    p.write_text(text)
    write_stack(p.parent / "stack.mrcs", blobs(40, 32), apix_A=0.0)
    return p


def _two_boxes(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    write_stack(p.parent / "small.mrcs", blobs(5, 24))
    return _star_from(
        p, _edit_row(3, lambda r: r.replace("000003@stack.mrcs", "000001@small.mrcs"))
    )


def _non_square(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    write_stack(
        p.parent / "stack.mrcs", np.zeros((40, 32, 30), np.float32) + blobs(40, 32)[..., :30]
    )
    return p


def _star_from(p: Path, edit: Callable[[str], str]) -> Path:
    p.write_text(edit(p.read_text()))
    return p


def _folder_as_input(tmp: Path) -> Path:
    p = tmp / "in" / "d.star"
    p.mkdir(parents=True)
    return p


def _stack_not_mrc(tmp: Path) -> Path:
    p = write_particles(tmp / "in")
    (p.parent / "stack.mrcs").write_bytes(b"not an mrc" * 500)
    return p


def _cs_garbage(tmp: Path) -> Path:
    p = _cs(tmp)
    p.write_bytes(b"garbage" * 100)
    return p


def _field(k: int, value: str) -> Callable[[str], str]:
    """Set field ``k`` (0-based) of a row to ``value``."""

    def edit(row: str) -> str:
        f = row.split("\t")
        f[k] = value
        return "\t".join(f)

    return edit


def _empty_table(text: str) -> str:
    lines, rows = _rows(text)
    return "\n".join(ln for i, ln in enumerate(lines) if i not in rows)


def _two_optics_groups_no_column(text: str) -> str:
    opt = "opticsGroup1\t1\t300.000000\t2.700000\t0.100000\t3.000000\t32\t2"
    text = text.replace(opt, opt + "\n" + opt.replace("Group1\t1", "Group2\t2"))
    return (
        text.replace("_rlnOpticsGroup #2\n_rlnDefocusU #3", "_rlnDefocusU #2")
        .replace("_rlnDefocusV #4", "_rlnDefocusV #3")
        .replace("_rlnDefocusAngle #5", "_rlnDefocusAngle #4")
        .replace("@stack.mrcs\t1\t", "@stack.mrcs\t")
    )


# (id, builder(tmp) -> argv, text the error line must hold)
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

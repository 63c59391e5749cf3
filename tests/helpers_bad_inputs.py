"""Builders of the bad inputs of ``tests/test_bad_input.py``: each makes a damaged STAR,
MRC or .cs file (or edits a good one) in a temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.helpers_bad import TINY, blobs, write_particles, write_stack
from tests.helpers_data import make_cs


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

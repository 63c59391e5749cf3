"""Property-based fuzzing of the STAR, MRC and .cs readers (hypothesis).

Any byte string, or a real file with random edits (bytes changed, inserted, deleted, lines
dropped or repeated, the file cut short), must give either a valid result or the one-line
:class:`engine.errors.InputError`, never another exception (and never a crash).

The examples are bounded (``TWODCLASS_FUZZ_EXAMPLES``, default 200 per reader) and
derandomized, so the suite stays quick and reproducible; set ``TWODCLASS_FUZZ_RANDOM=1`` to
explore new examples.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.io.cs import load_cs_array, read_cs
from engine.io.mrc import clear_cache, open_stack, stack_info
from engine.io.particles import read_particles
from engine.io.star import read_star
from tests.helpers_bad import write_particles
from tests.helpers_data import make_cs, make_stack

FUZZ = settings(
    max_examples=int(os.environ.get("TWODCLASS_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("TWODCLASS_FUZZ_RANDOM", "") in ("", "0"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: one edit: (kind, position as a fraction of the length, bytes)
EDIT = st.tuples(
    st.sampled_from(["set", "insert", "delete", "cut", "drop-line", "repeat-line", "swap"]),
    st.floats(0.0, 1.0),
    st.binary(min_size=1, max_size=6)
    | st.sampled_from([b" ", b"\t", b"\n", b"#", b"@", b"nan", b"-1", b"'", b'"', b"\x00"]),
)


def mutate(raw: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    """Apply ``edits`` to ``raw`` (deterministic)."""
    b = bytearray(raw)
    for kind, frac, data in edits:
        i = min(int(frac * len(b)), max(len(b) - 1, 0))
        if kind == "set":
            b[i : i + len(data)] = data
        elif kind == "insert":
            b[i:i] = data
        elif kind == "delete":
            del b[i : i + 1 + data[0] % 16]
        elif kind == "cut":
            del b[i:]
        else:
            lines = bytes(b).split(b"\n")
            j = min(int(frac * len(lines)), len(lines) - 1)
            if kind == "drop-line":
                del lines[j]
            elif kind == "repeat-line":
                lines.insert(j, lines[j])
            elif j + 1 < len(lines):
                lines[j], lines[j + 1] = lines[j + 1], lines[j]
            b = bytearray(b"\n".join(lines))
    return bytes(b)


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    clear_cache()  # a rewritten stack must be mapped afresh
    return path


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    """Real files to mutate: a STAR over a stack, an MRC stack, .cs in both formats."""
    from cryosparc.dataset import Dataset

    d = tmp_path_factory.mktemp("real")
    star = write_particles(d / "star", n=12, box=16)
    mrc = d / "mrc" / "s.mrcs"
    mrc.parent.mkdir()
    make_stack(mrc, n=3, box=8)
    cs1, _ = make_cs(d / "cs", n=6, box=16)
    cs2 = cs1.with_name("particles2.cs")
    Dataset.load(cs1).save(cs2, format=2)
    return {"star": star, "mrc": mrc, "cs1": cs1, "cs2": cs2}


def _ok_or_input_error(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's casting warnings on nonsense values
        try:
            return fn(*args)
        except InputError as exc:
            assert "\n" not in str(exc)  # one line
            return None


# ------------------------------------------------------------------------------- STAR
@FUZZ
@given(raw=st.binary(max_size=2000))
def test_star_any_bytes(raw, tmp_path):
    blocks = _ok_or_input_error(read_star, _write(tmp_path / "x.star", raw))
    assert blocks is None or isinstance(blocks, dict)


@FUZZ
@given(text=st.text(alphabet="data_loop_rlnImageName#@ \t\n0123456789.-'\"", max_size=400))
def test_star_star_like_text(text, tmp_path):
    _ok_or_input_error(read_star, _write(tmp_path / "x.star", text.encode()))


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=4))
def test_star_particles_mutated(edits, real, tmp_path):
    """A real particle STAR with random edits, read with its stack: a valid particle set
    (every image readable) or one line."""
    raw = mutate(real["star"].read_bytes(), edits)
    p = _write(real["star"].with_name(f"m{os.getpid()}.star"), raw)
    try:
        ps = _ok_or_input_error(read_particles, p)
        if ps is not None:
            assert ps.box == 16 and len(ps) > 0
            imgs = _ok_or_input_error(ps.read_images, np.arange(len(ps)))
            assert imgs is None or imgs.shape == (len(ps), 16, 16)
    finally:
        p.unlink()


# -------------------------------------------------------------------------------- MRC
@FUZZ
@given(raw=st.binary(max_size=3000))
def test_mrc_any_bytes(raw, tmp_path):
    p = _write(tmp_path / "x.mrcs", raw)
    _ok_or_input_error(stack_info, p)
    res = _ok_or_input_error(open_stack, p)
    if res is not None:
        assert np.asarray(res[0][-1]).shape == res[0].shape[1:]


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=4), header_only=st.booleans())
def test_mrc_mutated(edits, header_only, real, tmp_path):
    """A real stack with edits (in the 1024-byte header, or anywhere)."""
    raw = real["mrc"].read_bytes()
    if header_only:
        raw = mutate(raw[:1024], edits)[:1024].ljust(1024, b"\0") + raw[1024:]
    else:
        raw = mutate(raw, edits)
    p = _write(tmp_path / "m.mrcs", raw)
    res = _ok_or_input_error(open_stack, p)
    if res is not None:
        arr, apix = res
        assert arr.ndim == 3 and apix >= 0
        assert np.asarray(arr[-1]).shape == arr.shape[1:]  # the last image is in the file


# -------------------------------------------------------------------------------- .cs
@FUZZ
@given(raw=st.binary(max_size=2000), magic=st.sampled_from([b"", b"\x93NUMPY", b"\x95CSDAT"]))
def test_cs_any_bytes(raw, magic, tmp_path):
    p = _write(tmp_path / "x.cs", magic + raw)
    _ok_or_input_error(load_cs_array, p)
    _ok_or_input_error(read_cs, p)


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=4), fmt=st.sampled_from(["cs1", "cs2"]))
def test_cs_mutated(edits, fmt, real, tmp_path):
    """Real .cs files (numpy format and cryoSPARC's compressed format) with edits; a result
    that reads must be a particle set."""
    raw = mutate(real[fmt].read_bytes(), edits)
    p = _write(real[fmt].with_name(f"m{os.getpid()}.cs"), raw)
    try:
        res = _ok_or_input_error(read_cs, p)
        if res is not None:
            df, optics = res
            assert "rlnImageName" in df.columns and len(df) > 0
        _ok_or_input_error(read_particles, p, real["cs1"].parents[1])
    finally:
        p.unlink()


def test_format2_reads_as_cryosparc_tools_does(real):
    """The format-2 parser against cryosparc-tools on a file cryosparc-tools wrote."""
    from cryosparc.dataset import Dataset

    ours = load_cs_array(real["cs2"])
    theirs = Dataset.load(real["cs2"]).to_records()
    assert ours.dtype.names == theirs.dtype.names
    for name in theirs.dtype.names:
        assert (np.asarray(ours[name]) == np.asarray(theirs[name])).all(), name
    a, _ = read_cs(real["cs1"])
    b, _ = read_cs(real["cs2"])
    assert a["rlnImageName"].tolist() == b["rlnImageName"].tolist()
    np.testing.assert_allclose(a["rlnDefocusU"], b["rlnDefocusU"])

"""engine.io.atomic, engine.io.star and engine.io.mrc: round trips and clear errors."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest

from engine.errors import InputError
from engine.io.atomic import atomic_path, atomic_write, atomic_write_text
from engine.io.mrc import new_stack, open_stack, read_volume, stack_info, write_stack
from engine.io.star import read_star, write_star
from tests.helpers_data import digest, make_stack


def test_atomic_write_modes_and_failure(tmp_path):
    p = tmp_path / "job.json"
    with atomic_write(p, "w") as f:
        json.dump({"a": 1}, f)
    assert json.loads(p.read_text()) == {"a": 1}
    with atomic_write(p) as t:  # lazy write through the target
        t.write('{"a": 2}')
    assert json.loads(p.read_text()) == {"a": 2}
    with pytest.raises(RuntimeError), atomic_write(p, "w") as f:
        f.write("half")
        raise RuntimeError("boom")
    assert json.loads(p.read_text()) == {"a": 2}  # untouched
    with atomic_path(tmp_path / "x.bin") as tmp:
        assert tmp.suffix == ".bin" and tmp.parent == tmp_path
        tmp.write_bytes(b"123")
    atomic_write_text(tmp_path / "t.txt", "hé")
    assert (tmp_path / "x.bin").read_bytes() == b"123"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "hé"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["job.json", "t.txt", "x.bin"]


def test_star_round_trip_blocks_and_types(tmp_path):
    parts = pd.DataFrame(
        {
            "rlnImageName": ["000001@a.mrcs", "000002@a.mrcs"],
            "rlnDefocusU": [12345.678901, 20000.5],
            "rlnClassNumber": [3, 1],
            "tdcJunkKind": ["", "ice"],
        }
    )
    general = {"rlnNrClasses": 2, "rlnPixelSize": 1.5}
    write_star(tmp_path / "m.star", {"general": general, "": parts})
    back = read_star(tmp_path / "m.star")
    assert list(back) == ["general", ""]
    assert back["general"].attrs["simple"] and back["general"]["rlnNrClasses"].iloc[0] == 2
    assert list(back[""].columns) == list(parts.columns)
    assert back[""]["rlnDefocusU"].tolist() == [12345.678901, 20000.5]
    assert back[""]["rlnClassNumber"].tolist() == [3, 1]
    assert back[""]["tdcJunkKind"].tolist() == ["", "ice"]
    write_star(tmp_path / "m2.star", back)  # simple blocks stay simple
    assert (
        "loop_" not in (tmp_path / "m2.star").read_text().split("data_general")[1].split("data_")[0]
    )


@pytest.mark.parametrize("content", [b"\x00\xff" * 200, b"hello world\nthis is not STAR\n"])
def test_star_garbled_is_input_error(tmp_path, content):
    p = tmp_path / "bad.star"
    p.write_bytes(content)
    with pytest.raises(InputError, match="bad.star"):
        read_star(p)
    with pytest.raises(InputError, match="missing.star: file not found"):
        read_star(tmp_path / "missing.star")


@pytest.mark.parametrize(
    "dtype,mode", [(np.float32, 2), (np.float16, 12), (np.int16, 1), (np.int8, 0), (np.uint16, 6)]
)
def test_open_stack_modes(tmp_path, dtype, mode):
    p = tmp_path / "s.mrcs"
    data = make_stack(p, n=4, box=12, apix_A=3.54, dtype=dtype)
    with mrcfile.open(p, header_only=True) as m:
        assert int(m.header.mode) == mode
    arr, apix = open_stack(p)
    assert arr.shape == (4, 12, 12) and arr.dtype == dtype and not arr.flags.writeable
    assert apix == 3.54
    np.testing.assert_array_equal(arr, data)
    assert stack_info(p) == (4, 12, 12, 3.54)


def test_single_image_and_volume(tmp_path):
    img = np.arange(64, dtype=np.float32).reshape(8, 8)
    with mrcfile.new(tmp_path / "one.mrc") as m:
        m.set_data(img)  # no voxel size: apix 0
    arr, apix = open_stack(tmp_path / "one.mrc")
    assert arr.shape == (1, 8, 8) and apix == 0.0
    np.testing.assert_array_equal(arr[0], img)
    vol = np.random.default_rng(1).random((6, 6, 6)).astype(np.float32)
    with mrcfile.new(tmp_path / "v.mrc") as m:
        m.set_data(vol)
        m.voxel_size = 2.0
    v, a = read_volume(tmp_path / "v.mrc")
    assert a == 2.0 and v.flags.writeable
    np.testing.assert_array_equal(v, vol)


def test_mrc_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nothere.mrcs: file not found"):
        open_stack(tmp_path / "nothere.mrcs")
    junk = tmp_path / "junk.mrcs"
    junk.write_bytes(b"not an mrc file" * 100)
    with pytest.raises(InputError, match="junk.mrcs: not a readable MRC file"):
        open_stack(junk)
    p = tmp_path / "cut.mrcs"
    make_stack(p, n=4, box=16)
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    with pytest.raises(InputError, match="cut.mrcs: MRC file is truncated"):
        open_stack(p)


def test_write_stack_and_new_stack(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 16, 16)).astype(np.float32)
    write_stack(tmp_path / "w.mrcs", a, 1.5)
    arr, apix = open_stack(tmp_path / "w.mrcs")
    np.testing.assert_array_equal(arr, a)
    assert apix == 1.5
    with new_stack(tmp_path / "n.mrcs", 7, 16, 2.5, float16=True) as w:
        w.write(0, a[:4])
        w.write(4, a[4:])
        assert not (tmp_path / "n.mrcs").exists()  # appears only when complete
    arr, apix = open_stack(tmp_path / "n.mrcs")
    assert arr.dtype == np.float16 and apix == 2.5
    np.testing.assert_allclose(arr, a, atol=4e-3)
    with mrcfile.open(tmp_path / "n.mrcs", header_only=True) as m:
        assert m.header.ispg == 0
        assert m.header.dmin == pytest.approx(a.min(), abs=1e-3)
        assert m.header.dmean == pytest.approx(a.mean(), abs=1e-3)
    # the old map stays valid while the file is replaced
    before = digest(tmp_path / "w.mrcs")
    old, _ = open_stack(tmp_path / "w.mrcs")
    write_stack(tmp_path / "w.mrcs", a[:2] * 2, 1.5)
    np.testing.assert_array_equal(old, a)
    assert digest(tmp_path / "w.mrcs") != before
    assert open_stack(tmp_path / "w.mrcs")[0].shape == (2, 16, 16)

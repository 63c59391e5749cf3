"""engine.io.particles: STAR 3.0 / 3.1 and cryoSPARC .cs particle sets, errors, layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from engine.errors import InputError
from engine.io.mrc import write_stack
from engine.io.particles import particles_to_blocks, read_particles
from engine.io.star import read_star, write_star
from tests.helpers_data import digest, make_cs, make_stack, make_star_30, make_star_31


def test_star_31_read_images_and_ctf(tmp_path):
    path, images = make_star_31(tmp_path, n=6, box=16, apix_A=1.25)
    ps = read_particles(path)
    assert (len(ps), ps.box, ps.apix_A, ps.star_version) == (6, 16, 1.25, "3.1")
    assert ps.optics is not None and len(ps.optics) == 2
    assert [p.name for p in ps.stack_paths] == ["a.mrcs", "b.mrcs"]
    idx = np.array([5, 0, 3, 3, 1])
    got = ps.read_images(idx)
    assert got.dtype == np.float32 and got.shape == (5, 16, 16)
    np.testing.assert_array_equal(got, images[idx])
    blocks = list(ps.iter_blocks(block_size=4))
    assert [(a, b) for a, b, _ in blocks] == [(0, 4), (4, 6)]
    np.testing.assert_array_equal(np.concatenate([x for _, _, x in blocks]), images)
    # CTF: defocus per particle, voltage/Cs/Q from the particle's optics group
    stars = starfile.read(path)["particles"]
    np.testing.assert_array_equal(ps.ctf.defocus_u_A, stars["rlnDefocusU"])
    np.testing.assert_array_equal(ps.ctf.defocus_angle_deg, stars["rlnDefocusAngle"])
    assert ps.ctf.voltage_kV.tolist() == [300.0, 200.0] * 3
    assert ps.ctf.cs_mm.tolist() == [2.7, 1.4] * 3
    assert ps.ctf.amp_contrast.tolist() == [0.1, 0.07] * 3
    assert ps.ctf_premultiplied is False


def test_star_30_no_optics_round_trip(tmp_path):
    path, images = make_star_30(tmp_path, n=5, box=16, apix_A=1.6)
    ps = read_particles(path)
    assert (ps.star_version, ps.optics, ps.block_name, ps.box) == ("3.0", None, "", 16)
    assert ps.apix_A == pytest.approx(1.6)  # rlnDetectorPixelSize * 1e4 / rlnMagnification
    np.testing.assert_array_equal(ps.read_images(np.arange(5)), images)
    assert ps.ctf.voltage_kV.tolist() == [200.0] * 5 and ps.ctf.cs_mm[0] == 2.0
    out = ps.particles.assign(rlnClassNumber=np.arange(1, 6))
    blocks = particles_to_blocks(ps, out)
    assert list(blocks) == [""]
    write_star(tmp_path / "out.star", blocks)
    again = read_particles(tmp_path / "out.star")
    assert again.star_version == "3.0"
    assert again.particles["rlnClassNumber"].tolist() == [1, 2, 3, 4, 5]
    assert list(again.particles.columns) == list(out.columns)


def test_star_31_layout_round_trip(tmp_path):
    path, _ = make_star_31(tmp_path)
    ps = read_particles(path)
    out = ps.particles.assign(rlnClassNumber=3, rlnAnglePsi=12.5)
    write_star(tmp_path / "run_data.star", particles_to_blocks(ps, out))
    back = read_star(tmp_path / "run_data.star")
    assert list(back) == ["optics", "particles"]
    pd.testing.assert_frame_equal(back["optics"], ps.optics)
    assert back["particles"]["rlnAnglePsi"].tolist() == [12.5] * 6


def test_cs_is_converted(tmp_path):
    path, images = make_cs(tmp_path, n=6, box=16, apix_A=1.1)
    before = digest(path)
    with pytest.raises(InputError, match="stack.mrc' not found"):
        read_particles(path)  # project-relative paths need the project folder
    ps = read_particles(path, project_dir=tmp_path)
    assert (ps.star_version, ps.box, len(ps)) == ("3.1", 16, 6)
    assert ps.apix_A == pytest.approx(1.1)
    np.testing.assert_array_equal(ps.read_images(np.arange(6)), images)
    arr = np.load(path)
    assert ps.particles["rlnImageName"][0] == f"{arr['blob/idx'][0] + 1:06d}@J2/extract/stack.mrc"
    np.testing.assert_allclose(ps.ctf.defocus_u_A, arr["ctf/df1_A"])
    np.testing.assert_allclose(
        ps.ctf.defocus_angle_deg, np.rad2deg(arr["ctf/df_angle_rad"]), rtol=1e-6
    )
    assert ps.ctf.voltage_kV[0] == 300.0 and ps.ctf.amp_contrast[0] == pytest.approx(0.1)
    assert ps.particles["uid"].tolist() == arr["uid"].tolist()  # original fields kept
    assert ps.optics["rlnImagePixelSize"].iloc[0] == pytest.approx(1.1)
    assert ps.optics["rlnImageSize"].tolist() == [16]
    blocks = particles_to_blocks(ps, ps.particles)
    assert list(blocks) == ["optics", "particles"]
    write_star(tmp_path / "from_cs.star", blocks)
    again = read_particles(tmp_path / "from_cs.star", project_dir=tmp_path)
    np.testing.assert_array_equal(again.read_images([2]), images[[2]])
    assert digest(path) == before


def _set_column(path, column, values=None):
    """Replace (or with ``values=None`` drop) a particle column of a STAR file."""
    blocks = starfile.read(path, always_dict=True)
    df = blocks["particles"].copy()
    if values is None:
        df = df.drop(columns=[column])
    else:
        df[column] = values
    blocks["particles"] = df
    starfile.write(blocks, path)


def _expect(path, match, **kw):
    before = digest(path)
    with pytest.raises(InputError, match=match):
        read_particles(path, **kw)
    assert digest(path) == before


def test_missing_stack(tmp_path):
    path, _ = make_star_31(tmp_path)
    (tmp_path / "Extract" / "b.mrcs").unlink()
    _expect(path, r"particles.star, row 4: image stack 'Extract/b.mrcs' not found")


def test_index_past_end(tmp_path):
    path, _ = make_star_31(tmp_path)
    _set_column(path, "rlnImageName", ["000001@Extract/a.mrcs"] * 4 + ["000009@Extract/b.mrcs"] * 2)
    _expect(path, r"particles.star, row 5: image 9 is past the end of .*b.mrcs \(3 images\)")


def test_no_image_name(tmp_path):
    path, _ = make_star_31(tmp_path)
    _set_column(path, "rlnImageName")
    _expect(path, r"particles.star: no rlnImageName column")


def test_mismatched_box(tmp_path):
    path, _ = make_star_31(tmp_path)
    make_stack(tmp_path / "Extract" / "b.mrcs", n=3, box=20)
    _expect(path, r"particles.star, row 4: image size 20 px in .*b.mrcs differs from 16 px")


def test_unreadable_star_and_stack(tmp_path):
    bad = tmp_path / "garbage.star"
    bad.write_bytes(bytes(range(256)) * 4)
    _expect(bad, r"garbage.star")
    path, _ = make_star_31(tmp_path / "x")
    (tmp_path / "x" / "Extract" / "a.mrcs").write_bytes(b"no mrc here" * 200)
    _expect(path, r"a.mrcs: not a readable MRC file")


def test_nan_pixels_named(tmp_path):
    path, images = make_star_31(tmp_path)
    images = images.copy()
    bad = images[3:].copy()
    bad[1, 4, 5] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile warns about the header stats
        write_stack(tmp_path / "Extract" / "b.mrcs", bad, 1.25)
    ps = read_particles(path)
    np.testing.assert_array_equal(ps.read_images([0, 3]), images[[0, 3]])
    with pytest.raises(
        InputError,
        match=r"particles.star, row 5: image 2 of .*b.mrcs contains "
        r"NaN or infinite pixels",
    ):
        ps.read_images(np.arange(6))


def test_unknown_optics_group_and_bare_stack_name(tmp_path):
    path, _ = make_star_31(tmp_path)
    _set_column(path, "rlnOpticsGroup", [1, 2, 3, 1, 1, 1])
    _expect(path, r"row 3: rlnOpticsGroup 3 is not in the optics table")
    make_stack(tmp_path / "single.mrcs", n=1, box=16)
    starfile.write(
        {"images": pd.DataFrame({"rlnImageName": ["single.mrcs"]})}, tmp_path / "one.star"
    )
    ps = read_particles(tmp_path / "one.star")
    assert (len(ps), ps.frame_index.tolist(), ps.block_name, ps.ctf) == (1, [0], "images", None)
    assert ps.apix_A == 2.0  # from the MRC header

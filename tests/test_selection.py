"""Automatic selection with reasons, view coverage, and the selection files / CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from helpers_job import make_finished_job
from test_stats import APIX, DIAM, KINDS, finish

from engine.errors import InputError, ParameterError
from engine.io.jobfolder import load_job
from engine.io.mrc import open_stack
from engine.io.star import read_star
from engine.select import (
    SelectionThresholds,
    auto_select,
    load_selection,
    parse_class_list,
    particle_outliers,
    view_coverage,
    write_selection,
)
from engine.select.class_stats import class_statistics


def _model(names, counts, res):
    imgs = finish([KINDS[n] if isinstance(n, str) else n for n in names])
    st = class_statistics(imgs, APIX, DIAM, counts=np.asarray(counts))
    st["tdcParticleCount"] = counts
    st["rlnEstimatedResolution"] = res
    return st


def test_auto_select_reasons_per_junk_kind():
    names = [
        "view0",
        "view1",
        "view2",
        "offcentre",
        "carbon",
        "ice_ring",
        "ice_blob",
        "noise",
        "view0_rotated",
        "view0_rotated",
    ]
    counts = [400, 300, 200, 150, 150, 120, 100, 100, 12, 80]
    res = [8.0, 9.0, 9.0, 12.0, 20.0, 15.0, 18.0, 40.0, 9.0, 28.0]
    t = auto_select(
        _model(names, counts, res), SelectionThresholds(max_res_A=15.0), mask_radius_A=DIAM / 2
    )
    assert t["selected"].tolist() == [True, True, True] + [False] * 7
    r = t["reason"].tolist()
    assert r[:3] == ["ok", "ok", "ok"]
    assert r[3].startswith("signal at the mask edge (0.") and "off-centre (4" in r[3]
    assert r[4].startswith("straight edge (carbon) (0.9")
    assert r[5].startswith("ring/blob without structure (ice) (0.9")
    assert r[6].startswith("ring/blob without structure (ice)")
    assert r[7].startswith("no structure, noise (contrast 0.")
    assert r[8] == "too few particles (12 < 30)"  # view0 has a good class already
    assert r[9] == "resolution 28 Å > 15 Å"
    kept = int(t.loc[t["selected"], "count"].sum())
    assert kept == 900


def test_rare_view_kept_when_only_member_of_its_family():
    names = ["view0", "view1", "view2"]
    t = auto_select(
        _model(names, [500, 400, 15], [8.0, 8.0, 11.0]),
        SelectionThresholds(max_res_A=12.0),
        mask_radius_A=DIAM / 2,
    )
    assert t["selected"].tolist() == [True, True, True]
    assert t["reason"].iloc[2] == (
        "kept: only good class of view family 3 (too few particles (15 < 30))"
    )
    cov = view_coverage(t, t["selected"].to_numpy())
    assert (cov.n_families, cov.n_kept, cov.warnings) == (3, 3, [])
    # below rare_min_particles (10) it goes, and the coverage says so
    t = auto_select(
        _model(names, [500, 400, 8], [8.0, 8.0, 11.0]),
        SelectionThresholds(max_res_A=12.0),
        mask_radius_A=DIAM / 2,
    )
    assert t["selected"].tolist() == [True, True, False]
    assert view_coverage(t, t["selected"].to_numpy()).n_families == 2


def test_auto_resolution_limit_is_relative():
    names = ["view0", "view1", "view2", "view0_rotated"]
    t = auto_select(_model(names, [500, 400, 300, 100], [10.0, 12.0, 14.0, 19.0]))
    # particle-weighted median 12 Å x 1.5 = 18 Å
    assert t.attrs["max_res_A"] == pytest.approx(18.0)
    assert t["selected"].tolist() == [True, True, True, False]
    assert t["reason"].iloc[3] == "resolution 19 Å > 18 Å"


def test_view_coverage_warns_when_last_class_of_family_dropped():
    names = ["view0", "view0_rotated", "view1", "view2"]
    t = auto_select(
        _model(names, [300, 250, 200, 100], [8.0] * 4), SelectionThresholds(max_res_A=15.0)
    )
    fam = dict(zip(t["class_number"], t["family"], strict=True))
    assert fam[1] == fam[2] and len({fam[1], fam[3], fam[4]}) == 3
    ok = view_coverage(t, [1, 3, 4])  # one of the two view0 classes is enough
    assert (ok.n_families, ok.n_kept, ok.dropped, ok.warnings) == (3, 3, [], [])
    bad = view_coverage(t, [1, 2, 3])  # drops class 4, the only class of view2
    assert bad.n_kept == 2 and bad.dropped == [fam[4]]
    assert bad.warnings == [
        f"view family {fam[4]} (class 4, 100 particles) has no selected "
        "class: this view would be lost"
    ]
    assert view_coverage({1: 1, 2: 1, 3: 2}, [3]).dropped == [1]


def test_thresholds_validate_and_roundtrip():
    th = SelectionThresholds(min_particles=5, max_edge_signal=0.2)
    assert SelectionThresholds.from_dict(th.to_dict()) == th
    assert SelectionThresholds(max_carbon_score=1.5).validate() == [
        "--max-carbon must be <= 1 (got 1.5)"
    ]
    with pytest.raises(ParameterError):
        auto_select(
            _model(["view0", "view1"], [10, 10], [8.0, 8.0]), SelectionThresholds(max_ice_score=-1)
        )
    assert parse_class_list("1, 4,7-9") == [1, 4, 7, 8, 9]
    with pytest.raises(ParameterError):
        parse_class_list("1,x")


# ----------------------------------------------------------------------------- job folders
@pytest.fixture()
def job(tmp_path):
    return make_finished_job(tmp_path, n_classes=6, n_particles=120, box=32, apix=2.0)


def test_write_selection_files(job, tmp_path):
    j = load_job(job)
    counts = dict(zip(j.class_numbers.tolist(), j.counts.tolist(), strict=True))
    out = tmp_path / "sel"
    paths = write_selection(job, [4, 1], out_dir=out, reasons={1: "ok", 4: "by hand"})
    blocks = read_star(paths["particles"])
    parts = blocks["particles"]
    assert len(parts) == counts[1] + counts[4]
    assert sorted(set(parts["rlnClassNumber"])) == [1, 4]
    assert list(parts.columns) == list(j.data.columns)
    pd.testing.assert_frame_equal(
        blocks["optics"].reset_index(drop=True), j.optics.reset_index(drop=True)
    )
    src = j.data.set_index("rlnImageName").loc[parts["rlnImageName"]]
    np.testing.assert_allclose(src["rlnAnglePsi"].to_numpy(), parts["rlnAnglePsi"].to_numpy())
    arr, apix = open_stack(paths["classes_mrcs"])
    assert arr.shape == (2, 32, 32) and apix == pytest.approx(2.0)
    np.testing.assert_allclose(arr[1], j.classes[3])
    cls = read_star(paths["classes_star"])["model_classes"]
    assert cls["rlnReferenceImage"].tolist() == [
        "000001@classes_selected.mrcs",
        "000002@classes_selected.mrcs",
    ]
    assert cls["tdcClassNumber"].tolist() == [1, 4]
    info = load_selection(out)
    assert info["class_ids"] == [1, 4] and info["mode"] == "manual"
    assert info["reasons"] == {"1": "ok", "4": "by hand"}
    assert info["n_particles"] == counts[1] + counts[4]
    assert not list(out.glob(".*tmp*"))  # no temporary files left
    with pytest.raises(InputError, match="unknown class number"):
        write_selection(job, [2, 9], out_dir=out)


def test_load_job_errors(tmp_path):
    with pytest.raises(InputError, match="job folder not found"):
        load_job(tmp_path / "nope")
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "job.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(InputError, match="no run_model.star"):
        load_job(tmp_path / "j")


def _select(argv):
    from engine.cli import select

    p = argparse.ArgumentParser()
    select.add_parser(p.add_subparsers())
    return select.run(p.parse_args(["select", *argv]))


def test_select_cli_manual_and_auto(job, tmp_path, capsys):
    assert _select([str(job), "--classes", "1-3", "-o", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "3 of 6 classes" in out and "wrote" in out
    assert load_selection(tmp_path / "m")["class_ids"] == [1, 2, 3]

    assert _select([str(job), "--auto", "--max-res-A", "15", "-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    info = load_selection(tmp_path / "a")
    assert info["mode"] == "auto" and info["thresholds"]["max_res_A"] == 15.0
    # class 6 has resolution 25 Å in the hand-made job
    assert 6 not in info["class_ids"]
    assert "resolution 25 Å > 15 Å" in out
    table = auto_select(job, SelectionThresholds(max_res_A=15.0))
    assert info["class_ids"] == table.loc[table["selected"], "class_number"].tolist()

    # dry run writes nothing
    assert _select([str(job), "-n", "-o", str(tmp_path / "d")]) == 0
    assert not (tmp_path / "d").exists()


def test_select_cli_errors(job, tmp_path, capsys):
    from engine.cli import main

    with pytest.raises(ParameterError, match="unknown class number"):
        _select([str(job), "--classes", "2,17"])
    with pytest.raises(InputError, match="job folder not found"):
        _select([str(tmp_path / "missing")])
    running = make_finished_job(tmp_path, status="running", job_name="r")
    (running / "run_data.star").unlink()
    with pytest.raises(InputError, match="not finish"):
        _select([str(running)])
    try:
        rc = main(["select", str(job), "--classes", "99"])
    except (ImportError, SystemExit):  # other subcommands not importable yet
        return
    assert rc == 2
    assert "unknown class number(s) 99" in capsys.readouterr().err


def test_view_coverage_from_statistics_table():
    st = _model(["view0", "view0_rotated", "view2"], [100, 90, 80], [8.0] * 3)
    cov = view_coverage(st, [1, 2])
    assert cov.n_families == 2 and len(cov.dropped) == 1
    assert "(class 3, 80 particles)" in cov.warnings[0]


# ----------------------------------------------------------------------------- particle filter
def _particles(n=400, seed=0):
    """A run_data table: 4 classes (row i in class i % 4 + 1), residual ~ N(1, 0.1) and
    signal ~ N(8, 1), both cut at 2.5 standard deviations."""
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(0.0, 1.0, (2, n)), -2.5, 2.5)
    return pd.DataFrame(
        {
            "rlnClassNumber": np.arange(n) % 4 + 1,
            "tdcResidualLowRes": 1.0 + 0.1 * z[0],
            "tdcSignalLowRes": 8.0 + 1.0 * z[1],
        }
    )


def test_particle_outliers_robust_z_and_reasons():
    d = _particles()
    d.loc[[0, 1, 2], "tdcResidualLowRes"] = [1.45, 2.0, 5.0]  # z about 4.5, 10, 40
    d.loc[[3, 4], "tdcSignalLowRes"] = [3.5, 1.0]  # z about -4.5, -7
    d.loc[5, "tdcResidualLowRes"] = 1.2  # z about 2: kept
    d.loc[[6, 10], "tdcResidualLowRes"] = 9.0  # class 3, not selected below
    v = particle_outliers(d, [1, 2, 4])
    assert v.note == ""
    gone = np.flatnonzero(v.in_classes & ~v.keep).tolist()
    assert gone == [0, 1, 3, 4]  # 2 and 6 are in class 3
    assert v.removed == {"excess low-resolution power": 2, "weak signal": 2}
    assert v.reason[0].startswith("excess low-resolution power (z +")
    assert v.reason[4].startswith("weak signal (z -")
    assert v.keep[5] and not v.in_classes[2] and not v.keep[2]
    assert v.stats["tdcResidualLowRes_median"] == pytest.approx(1.0, abs=0.02)
    assert v.stats["tdcResidualLowRes_sd"] == pytest.approx(0.1, rel=0.15)
    assert "4 of 300 particles" in v.summary()
    # a stricter and a looser threshold; 0 switches a test off
    assert (
        ~particle_outliers(d, [1, 2, 4], SelectionThresholds(max_residual_z=2.0)).keep
        & v.in_classes
    ).sum() > 4
    v0 = particle_outliers(d, [1, 2, 4], SelectionThresholds(max_residual_z=0.0))
    assert v0.removed["excess low-resolution power"] == 0 and v0.removed["weak signal"] == 2
    off = particle_outliers(d, [1, 2, 4], SelectionThresholds(max_residual_z=0, min_signal_z=0))
    assert off.note == "switched off" and (off.keep == off.in_classes).all()


def test_particle_outliers_does_not_guess():
    d = _particles()
    v = particle_outliers(d.drop(columns=["tdcSignalLowRes"]), [1, 2])
    assert "no tdcSignalLowRes column" in v.note and (v.keep == v.in_classes).all()
    small = particle_outliers(d.iloc[:40], [1])  # 10 particles in class 1
    assert "fewer than 30 particles" in small.note and small.keep.sum() == 10
    d.loc[8, "tdcResidualLowRes"] = np.nan  # unreadable value: removed
    v = particle_outliers(d, [1])
    assert not v.keep[8] and "no value" in v.reason[8]


def test_write_selection_with_particle_filter(tmp_path):
    job = make_finished_job(
        tmp_path, n_classes=6, n_particles=120, box=32, apix=2.0, n_outliers=6, with_truth=True
    )
    truth = json.loads((job / "job.json").read_text())["_test_truth"]
    cls = np.asarray(truth["classes"])
    ids = [1, 2, 3, 4]
    outliers = [i for i in truth["outliers"] if cls[i] in ids]
    assert outliers
    out = tmp_path / "sel"
    paths = write_selection(job, ids, out_dir=out, particle_filter=SelectionThresholds())
    j = load_job(job)
    kept = read_star(paths["particles"])["particles"]
    removed = read_star(paths["removed"])["particles"]
    in_cls = np.flatnonzero(np.isin(cls, ids))
    want = [j.data["rlnImageName"][i] for i in in_cls if i not in outliers]
    assert kept["rlnImageName"].tolist() == want
    assert removed["rlnImageName"].tolist() == [j.data["rlnImageName"][i] for i in outliers]
    assert (
        removed["tdcRemovedReason"]
        .str.match(
            r"(excess low-resolution power|weak signal)"
            r" \(z "
        )
        .all()
    )
    info = load_selection(out)
    assert info["n_particles"] == len(want) and info["n_particles_in_classes"] == len(in_cls)
    assert info["particle_filter"]["n_removed"] == len(outliers)
    assert info["particle_filter"]["max_residual_z"] == 4.0
    # a verdict computed beforehand gives the same files; one for other classes is refused
    v = particle_outliers(j.data, ids)
    paths = write_selection(job, ids, out_dir=tmp_path / "v", particle_filter=v)
    assert read_star(paths["particles"])["particles"]["rlnImageName"].tolist() == want
    with pytest.raises(ValueError, match="other classes"):
        write_selection(job, [1, 2], out_dir=tmp_path / "v", particle_filter=v)
    # the same folder without the filter: every particle, and no stale removed file
    paths = write_selection(job, ids, out_dir=out)
    assert len(read_star(paths["particles"])["particles"]) == len(in_cls)
    assert "removed" not in paths and not (out / "particles_removed.star").exists()
    assert load_selection(out)["particle_filter"] is None


def test_select_cli_particle_filter(tmp_path, capsys):
    job = make_finished_job(
        tmp_path, n_classes=6, n_particles=120, box=32, apix=2.0, n_outliers=6, with_truth=True
    )
    assert _select([str(job), "--classes", "1-6", "-o", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert (
        "particle filter: 6 of 120 particles of the selected classes removed "
        "(3 excess low-resolution power, 3 weak signal)" in out
    )
    assert "114 of 120 particles selected" in out and "particles_removed.star" in out
    assert (
        _select([str(job), "--classes", "1-6", "--no-particle-filter", "-o", str(tmp_path / "n")])
        == 0
    )
    out = capsys.readouterr().out
    assert "particle filter: off" in out and "120 of 120 particles selected" in out
    assert load_selection(tmp_path / "n")["n_particles"] == 120

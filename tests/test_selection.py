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
from engine.io.mrc import open_stack
from engine.io.star import read_star
from engine.jobfiles import load_job
from engine.selection import (
    SelectionThresholds,
    auto_select,
    load_selection,
    parse_class_list,
    view_coverage,
    write_selection,
)
from engine.stats import class_statistics


def _model(names, counts, res):
    imgs = finish([KINDS[n] if isinstance(n, str) else n for n in names])
    st = class_statistics(imgs, APIX, DIAM, counts=np.asarray(counts))
    st["tdcParticleCount"] = counts
    st["rlnEstimatedResolution"] = res
    return st


def test_auto_select_reasons_per_junk_kind():
    names = ["view0", "view1", "view2", "offcentre", "carbon", "ice_ring", "ice_blob", "noise",
             "view0_rotated", "view0_rotated"]
    counts = [400, 300, 200, 150, 150, 120, 100, 100, 12, 80]
    res = [8.0, 9.0, 9.0, 12.0, 20.0, 15.0, 18.0, 40.0, 9.0, 28.0]
    t = auto_select(_model(names, counts, res), SelectionThresholds(max_res_A=15.0),
                    mask_radius_A=DIAM / 2)
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
    t = auto_select(_model(names, [500, 400, 15], [8.0, 8.0, 11.0]),
                    SelectionThresholds(max_res_A=12.0), mask_radius_A=DIAM / 2)
    assert t["selected"].tolist() == [True, True, True]
    assert t["reason"].iloc[2] == ("kept: only good class of view family 3 "
                                   "(too few particles (15 < 30))")
    cov = view_coverage(t, t["selected"].to_numpy())
    assert (cov.n_families, cov.n_kept, cov.warnings) == (3, 3, [])
    # below rare_min_particles (10) it goes, and the coverage says so
    t = auto_select(_model(names, [500, 400, 8], [8.0, 8.0, 11.0]),
                    SelectionThresholds(max_res_A=12.0), mask_radius_A=DIAM / 2)
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
    t = auto_select(_model(names, [300, 250, 200, 100], [8.0] * 4),
                    SelectionThresholds(max_res_A=15.0))
    fam = dict(zip(t["class_number"], t["family"], strict=True))
    assert fam[1] == fam[2] and len({fam[1], fam[3], fam[4]}) == 3
    ok = view_coverage(t, [1, 3, 4])  # one of the two view0 classes is enough
    assert (ok.n_families, ok.n_kept, ok.dropped, ok.warnings) == (3, 3, [], [])
    bad = view_coverage(t, [1, 2, 3])  # drops class 4, the only class of view2
    assert bad.n_kept == 2 and bad.dropped == [fam[4]]
    assert bad.warnings == [f"view family {fam[4]} (class 4, 100 particles) has no selected "
                            "class: this view would be lost"]
    assert view_coverage({1: 1, 2: 1, 3: 2}, [3]).dropped == [1]


def test_thresholds_validate_and_roundtrip():
    th = SelectionThresholds(min_particles=5, max_edge_signal=0.2)
    assert SelectionThresholds.from_dict(th.to_dict()) == th
    assert SelectionThresholds(max_carbon_score=1.5).validate() == [
        "--max-carbon must be <= 1 (got 1.5)"]
    with pytest.raises(ParameterError):
        auto_select(_model(["view0", "view1"], [10, 10], [8.0, 8.0]),
                    SelectionThresholds(max_ice_score=-1))
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
    pd.testing.assert_frame_equal(blocks["optics"].reset_index(drop=True),
                                  j.optics.reset_index(drop=True))
    src = j.data.set_index("rlnImageName").loc[parts["rlnImageName"]]
    np.testing.assert_allclose(src["rlnAnglePsi"].to_numpy(), parts["rlnAnglePsi"].to_numpy())
    arr, apix = open_stack(paths["classes_mrcs"])
    assert arr.shape == (2, 32, 32) and apix == pytest.approx(2.0)
    np.testing.assert_allclose(arr[1], j.classes[3])
    cls = read_star(paths["classes_star"])["model_classes"]
    assert cls["rlnReferenceImage"].tolist() == ["000001@classes_selected.mrcs",
                                                 "000002@classes_selected.mrcs"]
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
    from engine.commands import select

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
    with pytest.raises(InputError, match="has not finished"):
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

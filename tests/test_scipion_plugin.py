"""The Scipion plugin is discovered, placed in the protocol tree, and its form is the engine's."""

from __future__ import annotations

import filecmp
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pwem")
pytestmark = pytest.mark.scipion

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- discovery
def test_plugin_and_protocols_are_discovered():
    import pyworkflow

    domain = pyworkflow.Config.getDomain()
    plugins = domain.getPlugins()
    assert "scipion_2dclass" in plugins, sorted(plugins)
    protocols = domain.getProtocols()
    assert "ProtTwoDClassify" in protocols
    assert "ProtTwoDSelect" in protocols
    from pwem.protocols import ProtClassify2D

    assert issubclass(protocols["ProtTwoDClassify"], ProtClassify2D)
    viewers = domain.getViewers()
    assert "TwoDClassifyViewer" in viewers
    # the plugin imports cleanly and has no binaries to install
    plugin = plugins["scipion_2dclass"].Plugin
    assert plugin.validateInstallation() == []
    assert "twodclass2026" in plugins["scipion_2dclass"]._bibtex


def _tree(conf_text: str) -> list:
    import configparser

    cp = configparser.ConfigParser()
    cp.optionxform = str
    cp.read_string(conf_text)
    return json.loads(cp["PROTOCOLS"]["Protocols SPA"])


def _find(children: list, text: str) -> dict:
    for c in children:
        if c.get("text") == text:
            return c
    raise AssertionError(f"{text!r} not in {[c.get('text') for c in children]}")


def test_protocols_conf_places_both_protocols_under_2d():
    tree = _tree((ROOT / "protocols.conf").read_text())
    section = _find(tree, "2D")
    classify = _find(section["children"], "Classify")
    select = _find(section["children"], "Select")
    assert [p["value"] for p in classify["children"]] == ["ProtTwoDClassify"]
    assert [p["value"] for p in select["children"]] == ["ProtTwoDSelect"]
    assert classify["children"][0]["text"] == "twodclass 2D classification"


def test_protocol_tree_reads_our_conf():
    """Scipion's own tree loader puts our protocols under 2D > Classify / Select (SPA view)."""
    import pyworkflow
    from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

    domain = pyworkflow.Config.getDomain()
    trees = ProtocolTreeConfig.load(domain, pyworkflow.Config.SCIPION_PROTOCOLS)
    found = {}

    def walk(node, path):
        text = str(node.text.get() if hasattr(node.text, "get") else node.text)
        value = getattr(node, "value", None)
        value = value.get() if hasattr(value, "get") else value
        if value in ("ProtTwoDClassify", "ProtTwoDSelect"):
            found[value] = path
        for child in node.childs:
            walk(child, path + [text])

    walk(trees["Protocols SPA"], [])
    assert found["ProtTwoDClassify"][-2:] == ["2D", "Classify"], found
    assert found["ProtTwoDSelect"][-2:] == ["2D", "Select"], found


def test_installed_package_has_protocols_conf():
    import scipion_2dclass

    shipped = importlib.resources.files(scipion_2dclass) / "protocols.conf"
    assert shipped.is_file()
    assert shipped.read_text() == (ROOT / "protocols.conf").read_text()
    pkg_dir = Path(scipion_2dclass.__file__).parent
    assert filecmp.cmp(pkg_dir / "protocols.conf", ROOT / "protocols.conf", shallow=False)


@pytest.mark.slow
def test_built_wheel_contains_protocols_conf(tmp_path):
    """A wheel of the project ships protocols.conf (a real file) in the plugin package."""
    if shutil.which("pip", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("pip not available")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)]
    try:
        import wheel  # noqa: F401

        cmd.insert(5, "--no-build-isolation")
    except ImportError:
        pass
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        conf = z.read("scipion_2dclass/protocols.conf").decode()
        names = z.namelist()
    assert conf == (ROOT / "protocols.conf").read_text()
    assert "scipion_2dclass/viewers/viewer_classify.py" in names


# --------------------------------------------------------------------------- form
def _protocol_params(cls) -> dict:
    from pyworkflow.protocol import Form

    prot = cls()
    form = Form(prot)
    prot._defineParams(form)
    return dict(form.iterAllParams())


def test_form_matches_engine_params():
    """Every engine parameter is in the form with its label, help, default and level."""
    from pyworkflow.protocol import params as pwparams
    from pyworkflow.protocol.constants import LEVEL_ADVANCED, LEVEL_NORMAL

    from engine.params import param_specs
    from scipion_2dclass.constants import PARALLEL_SPECS
    from scipion_2dclass.protocols import ProtTwoDClassify

    params = _protocol_params(ProtTwoDClassify)
    specs = param_specs()
    engine_names = {s.name for s in specs} - set(PARALLEL_SPECS)
    form_names = set(params) - {
        "inputParticles",
        "numberOfThreads",
        "numberOfMpi",
        "hostName",
        "useQueue",
        "queueParams",
        "runName",
        "runMode",
        "comment",
        "useGpu",
        "gpuList",
        "binThreads",
    }
    assert form_names == engine_names
    kinds = {int: pwparams.IntParam, float: pwparams.FloatParam, bool: pwparams.BooleanParam}
    for s in specs:
        if s.name in PARALLEL_SPECS:
            continue
        p = params[s.name]
        assert type(p) is kinds[s.type], s.name
        assert p.label.get().startswith(s.label), (s.name, p.label.get())
        if s.unit:
            assert f"({s.unit})" in p.label.get()
        assert s.help in p.help.get(), s.name
        assert s.flag in p.help.get()
        want_default = s.default if s.default is not None else None
        got = p.default.get()
        if want_default is None:
            assert got in (None, ""), (s.name, got)
        elif s.type is bool:
            assert str(got).lower() == str(want_default).lower(), s.name
        else:
            assert float(got) == pytest.approx(float(want_default)), s.name
        level = LEVEL_NORMAL if s.level == "basic" else LEVEL_ADVANCED
        assert p.expertLevel.get() == level, s.name
    # the basic cryoSPARC parameters are on the normal level
    for name in (
        "n_classes",
        "max_res_A",
        "uncertainty",
        "diameter_A",
        "diameter_outer_A",
        "online_iters",
        "batch_per_class",
        "full_passes",
    ):
        assert params[name].expertLevel.get() == LEVEL_NORMAL
    # threads and MPI live in the parallel section
    assert "numberOfThreads" in params and "numberOfMpi" in params


def test_select_form_has_the_particle_filter_of_twodclass_select():
    """'Remove outlier particles' (default on) and its two thresholds, whose label, help,
    default and minimum come from engine.select.selection.SelectionThresholds."""
    import dataclasses

    from pyworkflow.protocol import params as pwparams
    from pyworkflow.protocol.constants import LEVEL_ADVANCED, LEVEL_NORMAL

    from engine.select import SelectionThresholds
    from scipion_2dclass.protocols import ProtTwoDSelect
    from scipion_2dclass.selection import FILTER_FIELDS

    params = _protocol_params(ProtTwoDSelect)
    onoff = params["removeOutliers"]
    assert type(onoff) is pwparams.BooleanParam
    assert onoff.label.get() == "Remove outlier particles"
    assert str(onoff.default.get()).lower() == "true"
    assert onoff.expertLevel.get() == LEVEL_NORMAL
    assert "--no-particle-filter" in onoff.help.get()
    fields = {f.name: f for f in dataclasses.fields(SelectionThresholds)}
    assert set(FILTER_FIELDS) == {"max_residual_z", "min_signal_z"}
    for name in FILTER_FIELDS:
        f, p = fields[name], params[name]
        assert type(p) is pwparams.FloatParam, name
        assert p.label.get() == f.metadata["label"], name
        assert f.metadata["help"] in p.help.get() and f.metadata["flag"] in p.help.get()
        assert float(p.default.get()) == pytest.approx(f.default), name
        assert p.expertLevel.get() == LEVEL_ADVANCED, name
        assert p.condition.get() == "removeOutliers", name
    # the form's values are the thresholds the filter gets; 'No' switches it off
    prot = ProtTwoDSelect()
    assert prot.filterThresholds() == SelectionThresholds()
    prot.max_residual_z.set(4.5)
    prot.min_signal_z.set(0.0)
    th = prot.filterThresholds()
    assert (th.max_residual_z, th.min_signal_z) == (4.5, 0.0)
    prot.max_residual_z.set(-1.0)
    assert any(
        e.startswith(
            f"*{fields['max_residual_z'].metadata['label']}* Value should be greater or equal"
        )
        for e in prot.validate()
    )
    prot.removeOutliers.set(False)
    assert prot.filterThresholds() is None


def test_form_values_reach_the_engine_cli():
    """The form's values -> ClassifyParams -> CLI args parse back to the same parameters."""
    from engine.cli import run
    from engine.params import ClassifyParams
    from scipion_2dclass.protocols import ProtTwoDClassify
    from scipion_2dclass.protocols.engine_form import classify_params

    prot = ProtTwoDClassify()
    prot.n_classes.set(7)
    prot.max_res_A.set(9.5)
    prot.diameter_A.set(150.0)
    prot.force_max.set(False)
    prot.online_iters.set(12)
    params = classify_params(prot, threads=3)
    assert params == ClassifyParams(
        n_classes=7, max_res_A=9.5, diameter_A=150.0, force_max=False, online_iters=12, threads=3
    )
    args = params.to_cli_args()
    assert args[args.index("--classes") + 1] == "7"
    assert "--no-force-max" in args and "--ctf" in args
    assert "--diameter-outer" not in args  # None = automatic: not passed
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    run.add_parser(sub)
    ns = parser.parse_args(["run", "in.star", "-o", "job", *args])
    assert run.params_from_args(ns) == params


def test_validation_messages_use_form_labels():
    from engine.params import ClassifyParams
    from scipion_2dclass.protocols.protocol_classify import engine_messages

    errs = ClassifyParams(n_classes=50, diameter_A=500.0).validate_for_data(20, 64, 3.0)
    msgs = engine_messages(errs)
    assert len(msgs) == 2
    assert any("'Number of 2D classes'" in m and "20 particles" in m for m in msgs)
    assert any("'Circular mask diameter'" in m and "larger than the box" in m for m in msgs)


# --------------------------------------------------------------------------- selection
def test_selection_criteria_and_reasons():
    from scipion_2dclass.selection import ClassSummary, decide, parse_ids

    assert parse_ids("1 3-5, 8") == {1, 3, 4, 5, 8}
    assert parse_ids("") == set()
    classes = [
        ClassSummary(1, 120, 8.0),
        ClassSummary(2, 15, 9.0),
        ClassSummary(3, 200, 25.0),
        ClassSummary(4, 90, None),
        ClassSummary(5, 10, 30.0),
    ]
    d = {
        x.class_id: x
        for x in decide(
            classes, min_particles=20, max_resolution_A=12.0, keep_ids={5}, reject_ids={1}
        )
    }
    assert [c for c in d if d[c].keep] == [5]
    assert d[1].reasons == ["rejected by id"]
    assert d[2].reasons == ["15 particles < minimum 20"]
    assert d[3].reasons == ["resolution 25.0 Å worse than 12 Å"]
    assert d[4].reasons == ["no resolution estimate"]
    auto = {1: (True, "ok"), 2: (False, "straight edge"), 3: (True, "ok")}
    d = decide(classes[:3], auto=auto)
    assert [x.keep for x in d] == [True, False, True]
    assert d[1].reasons == ["automatic: straight edge"]
    d = decide(classes, keep_ids={2, 4}, only_listed=True)
    assert [x.class_id for x in d if x.keep] == [2, 4]


def test_saved_selection_and_job_folder_detection(tmp_path):
    from scipion_2dclass.selection import ClassSummary, decide, find_job_dir

    classes = [ClassSummary(1, 100, 8.0), ClassSummary(2, 5, 40.0), ClassSummary(3, 80, 9.0)]
    d = decide(classes, min_particles=50, saved={2, 3}, reject_ids={3})
    assert [(x.class_id, x.keep, x.reasons[0]) for x in d] == [
        (1, False, "not selected in the terminal browser"),
        (2, True, "selected in the terminal browser"),
        (3, False, "rejected by id"),
    ]
    assert find_job_dir(None) is None
    assert find_job_dir(str(tmp_path / "run_classes.mrcs")) is None  # not a job folder
    for name in ("run_model.star", "run_data.star"):
        (tmp_path / name).write_text("")
    assert find_job_dir(str(tmp_path / "run_classes.mrcs")) == str(tmp_path)


def _filter_job(path, ids, stats=True, k=3, n_per_class=20) -> None:
    """A hand-made job: ``k`` classes of ``n_per_class`` particles with Scipion ids ``ids``;
    the first particle of each class has 5x the residual, the second a tenth of the signal."""
    from tests.helpers_scipion import write_fake_job

    n = k * n_per_class
    cls = np.repeat(np.arange(1, k + 1), n_per_class)
    rng = np.random.default_rng(3)
    resid = 1.0 + 0.05 * rng.uniform(-1, 1, n)
    signal = 10.0 + 0.5 * rng.uniform(-1, 1, n)
    resid[::n_per_class] *= 5.0
    signal[1::n_per_class] *= 0.1
    write_fake_job(
        str(path),
        averages=np.zeros((k, 16, 16), np.float32),
        classes_apix=4.0,
        particle_apix=2.0,
        box=32,
        class_number=cls,
        psi_deg=np.zeros(n),
        origin_x_A=np.zeros(n),
        origin_y_A=np.zeros(n),
        scipion_ids=np.asarray(ids),
        particle_stats={"tdcResidualLowRes": resid, "tdcSignalLowRes": signal} if stats else None,
    )


def test_particle_filter_names_scipion_ids_and_says_why_not(tmp_path):
    import starfile

    from engine.select import SelectionThresholds
    from scipion_2dclass.selection import particle_filter

    ids = np.arange(101, 161)  # Scipion ids are not row numbers
    _filter_job(tmp_path / "job", ids)
    th = SelectionThresholds()
    pf = particle_filter(str(tmp_path / "job"), [1, 3], th, enabled_ids=lambda: 1 / 0)
    assert pf.applied and pf.note == ""
    assert sorted(pf.removed) == [101, 102, 141, 142]  # from _tdcScipionId, not the order
    assert all(pf.removed[i].startswith("excess low-resolution power (z ") for i in (101, 141))
    assert all(pf.removed[i].startswith("weak signal (z ") for i in (102, 142))
    assert pf.counts() == {"excess low-resolution power": 2, "weak signal": 2}
    assert pf.info["n_in_classes"] == 40
    assert (pf.info["max_residual_z"], pf.info["min_signal_z"]) == (
        th.max_residual_z,
        th.min_signal_z,
    )
    assert pf.summary == (
        "particle filter: 4 of 40 particles of the selected classes "
        "removed (2 excess low-resolution power, 2 weak signal)"
    )
    # why it did not run
    assert particle_filter(str(tmp_path / "job"), [1], None, []).summary == (
        "particle filter: off (every particle of the selected classes kept)"
    )
    pf = particle_filter(None, [1], th, [])
    assert not pf.applied and not pf.removed
    assert pf.summary == (
        "particle filter: the classes do not come from a twodclass job folder: nothing removed"
    )
    pf = particle_filter(str(tmp_path / "job"), [1], th, [])
    assert not pf.applied and "fewer than 30 particles" in pf.summary
    _filter_job(tmp_path / "old", ids, stats=False)
    pf = particle_filter(str(tmp_path / "old"), [1, 2, 3], th, [])
    assert not pf.applied and not pf.removed
    assert "no tdcResidualLowRes, tdcSignalLowRes column" in pf.summary
    # rows without _tdcScipionId follow the enabled input particles, when they match
    data = tmp_path / "job" / "run_data.star"
    blocks = starfile.read(data, always_dict=True)
    blocks["particles"] = blocks["particles"].drop(columns=["tdcScipionId"])
    starfile.write(blocks, data, overwrite=True)
    order = np.argsort(-ids)  # write_fake_job wrote the rows in decreasing id
    enabled = np.arange(1, 61)
    pf = particle_filter(str(tmp_path / "job"), [1, 3], th, enabled)
    assert sorted(pf.removed) == sorted(
        int(enabled[j]) for j in np.flatnonzero(np.isin(ids[order], [101, 102, 141, 142]))
    )
    pf = particle_filter(str(tmp_path / "job"), [1, 3], th, np.arange(1, 50))
    assert not pf.applied and "60 rows of run_data.star do not match" in pf.summary


def test_engine_arguments_new_resume_overwrite(tmp_path):
    import json

    from engine.params import ClassifyParams
    from scipion_2dclass.protocols.protocol_classify import engine_arguments

    params = ClassifyParams(n_classes=4, threads=2)
    job = str(tmp_path / "job")
    new = engine_arguments("in.star", job, params)
    assert new[:5] == ["run", "in.star", "-o", job, "--progress"]
    assert "--overwrite" not in new and new[new.index("--classes") + 1] == "4"
    (tmp_path / "job" / "checkpoint").mkdir(parents=True)
    for status, want in (("cancelled", "resume"), ("failed", "resume"), ("finished", "overwrite")):
        (tmp_path / "job" / "job.json").write_text(json.dumps({"status": status}))
        args = engine_arguments("in.star", job, params)
        if want == "resume":
            assert args == ["run", "--resume", job, "--progress", "jsonl", "--threads", "2"]
        else:
            assert "--overwrite" in args and args[1] == "in.star"


def _xmipp_apply(img, m):
    """xmipp's application of a 2D matrix (rotation part): ``out(A x) = in(x)``."""
    from engine.core.pose import sample_bilinear

    b = img.shape[0]
    c = b // 2
    yy, xx = np.mgrid[0:b, 0:b].astype(float) - c
    inv = np.linalg.inv(m[:2, :2])
    xs = inv[0, 0] * xx + inv[0, 1] * yy + c
    ys = inv[1, 0] * xx + inv[1, 1] * yy + c
    return sample_bilinear(img.astype(float), xs, ys)


def test_transform_matrix_follows_the_engine_pose_convention():
    """pose_to_matrix + align_with_matrix = engine.core.pose.align_to_class (README convention),
    the rotation agrees with how xmipp applies a matrix, and the translation is what
    Scipion's extract-coordinates subtracts from the coordinate."""
    from engine.core.pose import align_to_class, class_to_particle
    from scipion_2dclass.convert import align_with_matrix, matrix_to_pose, pose_to_matrix

    b = 64
    yy, xx = np.mgrid[0:b, 0:b] - b // 2
    ref = np.exp(-((xx - 6) ** 2 / 30 + (yy + 3) ** 2 / 8)) + 0.5 * np.exp(
        -((xx + 5) ** 2 + (yy - 8) ** 2) / 12
    )
    for psi, ox, oy in ((35.0, 2.5, -1.5), (-120.0, 0.0, 0.0), (200.0, -3.0, 1.0)):
        part = class_to_particle(ref.astype(np.float32), psi, ox, oy)
        m = pose_to_matrix(psi, ox, oy)
        np.testing.assert_allclose(matrix_to_pose(m), ((psi + 180) % 360 - 180, ox, oy), atol=1e-9)
        np.testing.assert_allclose(m[:2, 3], (ox, oy))  # extract-coordinates: coord - t
        ours = align_with_matrix(part, m)
        np.testing.assert_allclose(ours, align_to_class(part, psi, ox, oy), atol=1e-5)
        inner = np.hypot(xx, yy) < 20
        assert np.corrcoef(ours[inner], ref[inner])[0, 1] > 0.99
        if ox == 0 and oy == 0:  # xmipp's forward application of the same matrix
            xm = _xmipp_apply(part, m)
            assert np.corrcoef(xm[inner], ref[inner])[0, 1] > 0.99
            wrong = _xmipp_apply(part, m.T)
            assert np.corrcoef(wrong[inner], ref[inner])[0, 1] < 0.8

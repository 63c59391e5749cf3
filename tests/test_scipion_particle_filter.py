"""ProtTwoDSelect's particle filter in a real (headless) Scipion project.

A hand-made finished twodclass job (``helpers_job.make_finished_job``: 120 particles in 6
classes, 6 known outliers at rows 0, 7, 14, ...: the first half with excess low-resolution
power, the rest with a weak signal) becomes the output of a ProtTwoDClassify (its
createOutputStep on the job, no engine run); ProtTwoDSelect then runs on those classes with
the particle filter on, on a subset of the classes, off, and on a job without the filter's
columns.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pwem")

import starfile  # noqa: E402
from helpers_job import make_finished_job  # noqa: E402
from pwem.protocols import ProtImportParticles  # noqa: E402
from pyworkflow.protocol.constants import STATUS_FINISHED  # noqa: E402
from pyworkflow.tests import BaseTest, setupTestProject  # noqa: E402

from engine.select import SelectionThresholds, particle_outliers  # noqa: E402
from scipion_2dclass.convert import read_job  # noqa: E402
from scipion_2dclass.protocols import ProtTwoDClassify, ProtTwoDSelect  # noqa: E402
from tests.helpers_scipion import write_particles_sqlite  # noqa: E402

pytestmark = pytest.mark.scipion

N, K, APIX, N_OUT = 120, 6, 2.0, 6
EXCESS, WEAK = "excess low-resolution power", "weak signal"


def ids_of(items) -> set[int]:
    return {int(p.getObjId()) for p in items}


class TestParticleFilter(BaseTest):
    @classmethod
    def setUpClass(cls) -> None:
        cls._cwd = os.getcwd()
        setupTestProject(cls)
        base = Path(cls.proj.getPath("handmade")).absolute()
        base.mkdir(parents=True)
        cls.job = make_finished_job(
            base, n_classes=K, n_particles=N, apix=APIX, n_outliers=N_OUT, with_truth=True
        )
        truth = json.loads((cls.job / "job.json").read_text())["_test_truth"]
        # row i of run_data.star is input particle i + 1 (the Scipion set below)
        cls.klass = {i + 1: int(k) for i, k in enumerate(truth["classes"])}
        rows = [int(r) for r in truth["outliers"]]
        assert len(rows) == N_OUT
        n_res = (N_OUT + 1) // 2
        cls.why = {r + 1: (EXCESS if j < n_res else WEAK) for j, r in enumerate(rows)}
        sqlite = str(base / "particles.sqlite")
        write_particles_sqlite(sqlite, str(base / "particles.mrcs"), N, APIX)
        prot = cls.newProtocol(
            ProtImportParticles,
            objLabel="import hand-made",
            importFrom=ProtImportParticles.IMPORT_FROM_SCIPION,
            sqliteFile=sqlite,
            samplingRate=APIX,
            voltage=300.0,
            sphericalAberration=2.7,
            amplitudeContrast=0.1,
            magnification=50000,
        )
        cls.protImport = cls.launchProtocol(prot)
        cls.classify = cls.classes_of_job(cls.job, "hand-made job with outliers")

    @classmethod
    def tearDownClass(cls) -> None:
        os.chdir(cls._cwd)

    @classmethod
    def classes_of_job(cls, job: Path, label: str) -> ProtTwoDClassify:
        """A finished ProtTwoDClassify whose engine job is ``job`` (its output step only)."""
        prot = cls.newProtocol(ProtTwoDClassify, objLabel=label, n_classes=K)
        prot.inputParticles.set(cls.protImport)
        prot.inputParticles.setExtended("outputParticles")
        cls.proj.saveProtocol(prot)
        shutil.copytree(job, prot._getExtraPath(), dirs_exist_ok=True)
        prot.createOutputStep()
        prot.setStatus(STATUS_FINISHED)
        cls.proj._storeProtocol(prot)
        return prot

    def select(self, label: str, source=None, **kwargs) -> ProtTwoDSelect:
        prot = self.newProtocol(ProtTwoDSelect, objLabel=label, useAuto=False, **kwargs)
        prot.inputClasses.set(source or self.classify)
        prot.inputClasses.setExtended("outputClasses")
        return self.launchProtocol(prot)

    # ------------------------------------------------------------------ tests
    def test_classification_carries_the_particle_statistics(self):
        data = starfile.read(self.job / "run_data.star", always_dict=True)["particles"]
        parts = {
            int(p.getObjId()): (p._tdc_residualLowRes.get(), p._tdc_signalLowRes.get())
            for c in self.classify.outputClasses
            for p in c
        }
        self.assertEqual(len(parts), N)
        got = np.array([parts[i + 1] for i in range(N)])
        np.testing.assert_allclose(got[:, 0], data.tdcResidualLowRes, rtol=1e-6)
        np.testing.assert_allclose(got[:, 1], data.tdcSignalLowRes, rtol=1e-6)

    def test_filter_removes_exactly_the_known_outliers(self):
        prot = self.select("select all, filter on")
        self.assertEqual(ids_of(prot.outputParticles), set(range(1, N + 1)) - set(self.why))
        removed = {
            int(p.getObjId()): p._tdc_removedReason.get() for p in prot.outputRemovedParticles
        }
        self.assertEqual(set(removed), set(self.why))
        for pid, reason in removed.items():
            self.assertTrue(reason.startswith(self.why[pid]), (pid, reason))
        # the removed particles keep class assignment and alignment of their class
        self.assertTrue(prot.outputRemovedParticles.hasAlignment2D())
        # the subset classes lose them too
        in_classes = {int(p.getObjId()) for c in prot.outputClasses for p in c}
        self.assertEqual(in_classes, ids_of(prot.outputParticles))
        self.assertEqual(prot.outputClasses.getSize(), K)
        n_res = sum(w == EXCESS for w in self.why.values())
        summary = "\n".join(prot.summary())
        self.assertIn(f"{N - N_OUT} particles selected.", summary)
        self.assertIn(
            f"Particle filter: {N_OUT} of {N} particles of the selected classes "
            f"removed ({n_res} {EXCESS}, {N_OUT - n_res} {WEAK}); the {N_OUT} "
            f"removed particles are in outputRemovedParticles.",
            summary,
        )
        methods = "\n".join(prot.methods())
        self.assertIn(f"{N_OUT} of {N} removed", methods)
        th = SelectionThresholds()
        self.assertIn(f"more than {th.max_residual_z:g} robust standard deviations above", methods)
        self.assertIn(f"more than {th.min_signal_z:g} robust standard deviations below", methods)
        # the same particles as `twodclass select` (engine.select.particle_outliers)
        data = read_job(str(self.job)).data
        verdict = particle_outliers(data, range(1, K + 1), th)
        self.assertEqual({i + 1 for i in np.flatnonzero(~verdict.keep)}, set(self.why))

    def test_filter_only_touches_the_selected_classes(self):
        keep = {1, 2, 3}
        members = {pid for pid, k in self.klass.items() if k in keep}
        want = {pid for pid in self.why if self.klass[pid] in keep}
        self.assertTrue(want, "the hand-made job has no outlier in classes 1-3")
        self.assertGreaterEqual(len(members), 30)  # enough for the robust statistics
        prot = self.select("select 1-3, filter on", keepIds="1-3", onlyListed=True)
        self.assertEqual({c.getObjId() for c in prot.outputClasses}, keep)
        self.assertEqual(ids_of(prot.outputParticles), members - want)
        self.assertEqual(ids_of(prot.outputRemovedParticles), want)
        counts = {w: sum(self.why[p] == w for p in want) for w in (EXCESS, WEAK)}
        parts = ", ".join(f"{n} {w}" for w, n in counts.items() if n)
        self.assertIn(
            f"Particle filter: {len(want)} of {len(members)} particles of the "
            f"selected classes removed ({parts})",
            "\n".join(prot.summary()),
        )

    def test_filter_off_outputs_every_particle_of_the_selected_classes(self):
        prot = self.select("select all, filter off", removeOutliers=False)
        self.assertEqual(ids_of(prot.outputParticles), set(range(1, N + 1)))
        self.assertEqual(sum(c.getSize() for c in prot.outputClasses), N)
        self.assertFalse(hasattr(prot, "outputRemovedParticles"))
        summary = "\n".join(prot.summary())
        self.assertIn(
            "Particle filter: off (every particle of the selected classes kept).", summary
        )
        self.assertNotIn(
            "Particles of the selected classes were removed", "\n".join(prot.methods())
        )

    def test_thresholds_of_zero_switch_the_tests_off(self):
        prot = self.select("select all, signal test only", max_residual_z=0.0)
        want = {pid for pid, w in self.why.items() if w == WEAK}
        self.assertEqual(ids_of(prot.outputRemovedParticles), want)
        self.assertEqual(ids_of(prot.outputParticles), set(range(1, N + 1)) - want)

    def test_job_without_the_filter_columns_keeps_every_particle(self):
        old = Path(self.proj.getPath("old_job")).absolute()
        shutil.copytree(self.job, old)
        blocks = starfile.read(old / "run_data.star", always_dict=True)
        blocks["particles"] = blocks["particles"].drop(
            columns=["tdcResidualLowRes", "tdcSignalLowRes"]
        )
        starfile.write(blocks, old / "run_data.star", overwrite=True)
        source = self.classes_of_job(old, "job of an older version")
        prot = self.select("select all of the older job", source=source)
        self.assertEqual(ids_of(prot.outputParticles), set(range(1, N + 1)))
        self.assertFalse(hasattr(prot, "outputRemovedParticles"))
        self.assertIn(
            "Particle filter: no tdcResidualLowRes, tdcSignalLowRes column in the particle file",
            "\n".join(prot.summary()),
        )

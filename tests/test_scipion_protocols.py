"""ProtTwoDClassify in a real (headless) Scipion project, on simulated particles with CTF.

Import 420 simulated particles (3 views, box 64, 3 Å/px, CTF) from a Scipion sqlite; check the
engine's input STAR and the outputs made from a hand-made job folder (ground-truth classes and
poses) without running the engine; then run ProtTwoDClassify end to end, with MPI, and a
classification whose stack has gone. The select protocol: tests/test_scipion_select.py.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("pwem")

import starfile  # noqa: E402

from engine.core.pose import align_to_class  # noqa: E402
from engine.io.jobfolder import JobFiles  # noqa: E402
from engine.sim.simulate import simulate_arrays  # noqa: E402
from scipion_2dclass.convert import (  # noqa: E402
    matrix_to_pose,
    read_job,
    write_particles_star,
)
from scipion_2dclass.protocols import ProtTwoDClassify  # noqa: E402
from scipion_2dclass.protocols.protocol_classify import fill_classes  # noqa: E402
from tests.helpers_scipion import (  # noqa: E402
    write_fake_job,
    write_particles_sqlite,
    write_stack,
)

pytestmark = pytest.mark.scipion
log = logging.getLogger(__name__)


from tests.helpers_scipion_project import (  # noqa: E402
    APIX,
    BOX,
    SMALL_APIX,
    SMALL_BOX,
    VIEWS,
    N,
    ScipionProjectCase,
    assignment,
    class_alignment_scores,
    fourier_crop,
)


class TestTwoDClassProtocols(ScipionProjectCase):
    def test_imported_particles_have_ctf(self):
        parts = self.protImport.outputParticles
        self.assertEqual(parts.getSize(), N)
        self.assertTrue(parts.hasCTF())
        self.assertAlmostEqual(parts.getSamplingRate(), APIX)

    def test_input_star_for_the_engine(self):
        parts = self.protImport.outputParticles
        out = os.path.join(self.proj.getTmpPath(), "star_test")
        star = os.path.join(out, "input.star")
        info = write_particles_star(parts, star, os.path.join(out, "stacks"))
        self.assertEqual((info["n_particles"], info["box"], info["has_ctf"]), (N, BOX, True))
        blocks = starfile.read(star, always_dict=True)
        optics, rows = blocks["optics"], blocks["particles"]
        self.assertEqual(len(optics), 1)
        o = optics.iloc[0]
        self.assertEqual(
            (
                o.rlnVoltage,
                o.rlnSphericalAberration,
                o.rlnAmplitudeContrast,
                o.rlnImagePixelSize,
                o.rlnImageSize,
            ),
            (300.0, 2.7, 0.1, APIX, BOX),
        )
        self.assertEqual(len(rows), N)
        np.testing.assert_array_equal(rows.tdcScipionId.to_numpy(), np.arange(1, N + 1))
        np.testing.assert_allclose(rows.rlnDefocusU, self.sim.ctf.defocus_u_A, rtol=1e-5)
        np.testing.assert_allclose(rows.rlnDefocusV, self.sim.ctf.defocus_v_A, rtol=1e-5)
        idx, path = rows.rlnImageName.iloc[7].split("@")
        self.assertEqual(int(idx), 8)
        self.assertTrue(os.path.isabs(path) and path.endswith(".mrcs"))
        self.assertEqual(os.path.realpath(path), os.path.realpath(self.stack))
        # the engine reads it back: same particles, CTF and pixel size
        from engine.io.particles import read_particles

        pset = read_particles(star)
        self.assertEqual((len(pset), pset.box, pset.apix_A), (N, BOX, APIX))
        np.testing.assert_allclose(pset.ctf.defocus_u_A, self.sim.ctf.defocus_u_A, rtol=1e-5)

    def test_outputs_from_handmade_job_follow_the_pose_convention(self):
        """Classes from a job folder with the true classes and poses (no engine run)."""
        job = os.path.join(self.proj.getTmpPath(), "fake_job")
        # true class averages: the noise-free members moved back by the README's convention
        views = np.zeros((VIEWS, BOX, BOX))
        for i in range(N):
            views[self.view[i] - 1] += align_to_class(
                self.clean[i], self.psi[i], self.ox_A[i] / APIX, self.oy_A[i] / APIX
            )
        views_small = np.stack([fourier_crop(v, SMALL_BOX) for v in views])
        write_fake_job(
            job,
            averages=views_small.astype(np.float32),
            classes_apix=SMALL_APIX,
            particle_apix=APIX,
            box=BOX,
            class_number=self.view,
            psi_deg=self.psi,
            origin_x_A=self.ox_A,
            origin_y_A=self.oy_A,
            scipion_ids=np.arange(1, N + 1),
            resolution_A=[9.0, 11.0, 13.0],
        )
        result = read_job(job)
        parts = self.protImport.outputParticles
        classes = self.protImport._createSetOfClasses2D(parts, suffix="_fake")
        fill_classes(classes, result, parts.getSamplingRate())
        self.assertEqual(classes.getSize(), VIEWS)
        self.assertEqual(sum(c.getSize() for c in classes), N)
        got = assignment(classes)
        np.testing.assert_array_equal([got[i] for i in range(1, N + 1)], self.view)
        for cls in classes.iterItems(orderBy="id"):
            k = cls.getObjId()
            rep = cls.getRepresentative()
            self.assertEqual(rep.getLocation(), (k, str(JobFiles.of(result.job_dir).classes)))
            self.assertAlmostEqual(rep.getSamplingRate(), SMALL_APIX)
            self.assertAlmostEqual(cls._tdc_resolution.get(), [9.0, 11.0, 13.0][k - 1])
            self.assertEqual(cls._tdc_particleCount.get(), int((self.view == k).sum()))
            for p in cls.iterItems():
                i = p.getObjId() - 1
                psi, ox, oy = matrix_to_pose(p.getTransform().getMatrix())
                self.assertAlmostEqual((psi - self.psi[i] + 180) % 360 - 180, 0, places=4)
                self.assertAlmostEqual(ox, self.ox_A[i] / APIX, places=4)
                self.assertAlmostEqual(oy, self.oy_A[i] / APIX, places=4)
        # applying every particle's Transform maps it onto the true view
        scores = class_alignment_scores(classes, self.clean, views_small, SMALL_APIX)
        log.info("hand-made job: alignment scores (right, wrong rotation) %s", scores)
        for right, wrong in scores:
            self.assertGreater(right, 0.95, scores)
            self.assertLess(wrong, 0.5, scores)
        # particles with this 2D alignment go back to the engine with the same poses
        aligned = self.protImport._createSetOfParticles(suffix="_aligned")
        aligned.copyInfo(parts)
        aligned.setAlignment2D()
        aligned.appendFromClasses(classes)
        star = os.path.join(self.proj.getTmpPath(), "aligned", "input.star")
        info = write_particles_star(aligned, star, os.path.dirname(star))
        self.assertTrue(info["has_alignment"])
        rows = starfile.read(star, always_dict=True)["particles"]
        ids = rows.tdcScipionId.to_numpy() - 1
        np.testing.assert_allclose(
            (rows.rlnAnglePsi - self.psi[ids] + 180) % 360 - 180, 0, atol=1e-6
        )
        np.testing.assert_allclose(rows.rlnOriginXAngst, self.ox_A[ids], atol=1e-6)
        np.testing.assert_allclose(rows.rlnOriginYAngst, self.oy_A[ids], atol=1e-6)

    # ------------------------------------------------------------------ end to end
    def test_classify_end_to_end(self):
        prot = self.classified()
        classes = prot.outputClasses
        sizes = {c.getObjId(): c.getSize() for c in classes}
        self.assertEqual(sum(sizes.values()), N)
        self.assertEqual(len(sizes), VIEWS)
        # the classes separate the simulated views
        got = assignment(classes)
        table = np.zeros((VIEWS + 1, VIEWS + 1), int)
        for pid, k in got.items():
            table[self.view[pid - 1], k] += 1
        purity = table.max(axis=0).sum() / N
        self.assertGreater(purity, 0.9, table)
        self.assertEqual(len({int(np.argmax(table[v])) for v in range(1, VIEWS + 1)}), VIEWS)
        # representatives: k@run_classes.mrcs at the averages' own pixel size
        result = read_job(prot.getJobDir())
        self.assertNotAlmostEqual(result.apix_A, APIX)
        # every particle carries the particle filter's statistics of run_data.star
        stats = {
            int(r["tdcScipionId"]): (r["tdcResidualLowRes"], r["tdcSignalLowRes"])
            for r in result.data.to_dict("records")
        }
        got = {
            p.getObjId(): (p._tdc_residualLowRes.get(), p._tdc_signalLowRes.get())
            for c in classes
            for p in c
        }
        self.assertEqual(set(got), set(stats))
        for pid, want in stats.items():
            np.testing.assert_allclose(got[pid], want, rtol=1e-5, err_msg=str(pid))
        for cls in classes.iterItems(orderBy="id"):
            rep = cls.getRepresentative()
            self.assertEqual(rep.getIndex(), cls.getObjId())
            self.assertFalse(os.path.isabs(rep.getFileName()))  # project-relative
            self.assertEqual(
                os.path.realpath(rep.getFileName()), str(JobFiles.of(result.job_dir).classes)
            )
            self.assertAlmostEqual(rep.getSamplingRate(), result.apix_A, places=4)
            self.assertEqual(cls._tdc_particleCount.get(), cls.getSize())
            self.assertGreater(cls._tdc_resolution.get(), 2 * APIX)
        # every member's Transform maps it onto its class average
        scores = class_alignment_scores(classes, self.clean, result.classes, result.apix_A)
        log.info("end to end: purity %.3f, alignment scores (right, wrong) %s", purity, scores)
        for right, wrong in scores:
            self.assertGreater(right, 0.8, scores)
            self.assertLess(wrong, 0.5, scores)
        # the engine's progress reached the run log; summary and methods speak numbers
        with open(prot.getLogPaths()[0]) as f:
            run_log = f.read()
        self.assertIn('"event": "iteration"', run_log)
        self.assertIn('"event": "done"', run_log)
        summary = "\n".join(prot.summary())
        self.assertIn(f"{VIEWS} classes from {N} particles", summary)
        self.assertIn(f"{N} particles were classified into {VIEWS}", "\n".join(prot.methods()))

    def test_failing_engine_fails_the_protocol_with_its_message(self):
        data = os.path.join(self.proj.getPath(), "doomed")
        stack = os.path.join(data, "doomed.mrcs")
        doomed = simulate_arrays(40, BOX, APIX, junk_fraction=0.0, n_views=2, seed=9, ctf=False)
        write_stack(stack, doomed.images, APIX)
        sqlite = os.path.join(data, "doomed.sqlite")
        write_particles_sqlite(sqlite, stack, 40, APIX)
        imported = self._import(sqlite, "import doomed")
        os.remove(stack)  # the imported particles now point to nothing
        prot = self._new_classify("classify doomed", imported)
        prot.n_classes.set(2)
        # particles without CTF: the engine is told not to correct it
        self.assertFalse(prot.getEngineParams().ctf)
        from scipion_2dclass.protocols.protocol_classify import engine_arguments

        self.assertIn(
            "--no-ctf",
            engine_arguments("in.star", self.proj.getTmpPath("nojob"), prot.getEngineParams()),
        )
        with self.assertRaisesRegex(Exception, "execution failed"):
            self.launchProtocol(prot)
        prot = self.proj.getProtocol(prot.getObjId())
        self.assertTrue(prot.isFailed())
        logs = ""
        for path in prot.getLogPaths():
            if os.path.exists(path):
                with open(path) as f:
                    logs += f.read()
        self.assertIn("twodclass: error:", logs)
        self.assertIn("doomed", logs.split("twodclass: error:", 1)[1].splitlines()[0])
        self.assertIn("Stack of the input particles not found", logs)

    def test_viewer_of_the_classification(self):
        from scipion_2dclass.viewers import TwoDClassifyViewer
        from scipion_2dclass.viewers.viewer_classify import FigureView, TerminalView

        prot = self.classified()
        viewer = TwoDClassifyViewer(project=self.proj)
        viewer.setProtocol(prot)
        actions = viewer._getVisualizeDict()
        self.assertEqual(
            set(actions),
            {"showClasses", "showMontage", "showDistribution", "showConvergence", "openBrowser"},
        )
        (montage,) = actions["showMontage"]("showMontage")
        self.assertIsInstance(montage, FigureView)
        titles = [ax.get_title() for ax in montage.figure().axes if ax.get_title()]
        sizes = [c.getSize() for c in prot.outputClasses.iterItems(orderBy="id")]
        self.assertEqual([int(t.split("n=")[1].split()[0]) for t in titles], sizes)
        (conv,) = actions["showConvergence"]("showConvergence")
        x = conv.figure().axes[0].lines[0].get_xdata()
        self.assertEqual(len(x), 7)  # 6 online iterations + 1 full pass
        (term,) = actions["openBrowser"]("openBrowser")
        self.assertIsInstance(term, TerminalView)
        self.assertEqual(term.job_dir, prot.getJobDir())

    @pytest.mark.mpi
    def test_classify_with_mpi(self):
        if shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None:
            self.skipTest("needs mpirun and mpi4py")
        prot = self._new_classify("classify mpi", self.protImport)
        prot.numberOfMpi.set(2)
        prot.numberOfThreads.set(1)
        prot = self.launchProtocol(prot)
        with open(os.path.join(prot.getJobDir(), "job.json")) as f:
            self.assertEqual(json.load(f)["mpi_processes"], 2)
        classes = prot.outputClasses
        self.assertEqual(sum(c.getSize() for c in classes), N)
        table = np.zeros((VIEWS + 1, VIEWS + 1), int)
        for pid, k in assignment(classes).items():
            table[self.view[pid - 1], k] += 1
        self.assertGreater(table.max(axis=0).sum() / N, 0.9, table)

    def test_validation_speaks_the_form_language(self):
        prot = self._new_classify("classify invalid", self.protImport)
        self.assertEqual(prot.validate(), [])
        prot.n_classes.set(N + 1)
        prot.diameter_A.set(BOX * APIX + 10)
        errors = "\n".join(prot.validate())
        self.assertIn(
            f"'Number of 2D classes' (classes) {N + 1} is more than the {N} particles", errors
        )
        self.assertIn("'Circular mask diameter' (diameter) 202 Å is larger than the box", errors)
        # a set without pixel size
        from pwem.objects import Particle, SetOfParticles

        path = os.path.join(self.proj.getTmpPath(), "no_apix.sqlite")
        parts = SetOfParticles(filename=path)
        p = Particle()
        p.setLocation(1, self.stack)
        parts.append(p)
        parts.write()
        prot = self.newProtocol(ProtTwoDClassify, n_classes=1)
        prot.inputParticles.set(parts)
        self.assertIn("no pixel size", "\n".join(prot.validate()))

    def test_disabled_particles_are_left_out(self):
        parts = self.protImport._createSetOfParticles(suffix="_some_disabled")
        parts.copyInfo(self.protImport.outputParticles)
        for p in self.protImport.outputParticles.iterItems(orderBy="id"):
            p = p.clone()
            p.setEnabled(p.getObjId() not in (3, 10))
            parts.append(p)
        parts.write()
        out = os.path.join(self.proj.getTmpPath(), "disabled")
        info = write_particles_star(parts, os.path.join(out, "in.star"), out)
        self.assertEqual(info["n_particles"], N - 2)
        ids = np.array([i for i in range(1, N + 1) if i not in (3, 10)])
        rows = starfile.read(os.path.join(out, "in.star"), always_dict=True)["particles"]
        np.testing.assert_array_equal(rows.tdcScipionId, ids)
        job = os.path.join(out, "job")
        write_fake_job(
            job,
            averages=np.zeros((VIEWS, SMALL_BOX, SMALL_BOX), np.float32),
            classes_apix=SMALL_APIX,
            particle_apix=APIX,
            box=BOX,
            class_number=self.view[ids - 1],
            psi_deg=self.psi[ids - 1],
            origin_x_A=self.ox_A[ids - 1],
            origin_y_A=self.oy_A[ids - 1],
            scipion_ids=ids,
        )
        classes = self.protImport._createSetOfClasses2D(parts, suffix="_disabled")
        fill_classes(classes, read_job(job), APIX)
        got = assignment(classes)
        self.assertEqual(sorted(got), ids.tolist())
        self.assertEqual([got[i] for i in ids], self.view[ids - 1].tolist())

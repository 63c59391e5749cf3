"""The protocols in a real (headless) Scipion project, on simulated particles with CTF.

One project: import 420 simulated particles (3 views, box 64, 3 Å/px, CTF) from a Scipion
sqlite; check the engine's input STAR and the outputs made from a hand-made job folder
(ground-truth classes and poses) without running the engine; then run ProtTwoDClassify end
to end, ProtTwoDSelect on its classes, and a classification whose stack has gone.
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
from pwem.protocols import ProtImportParticles  # noqa: E402
from pyworkflow.tests import BaseTest, setupTestProject  # noqa: E402

from engine.core.pose import align_to_class  # noqa: E402
from engine.sim.simulate import simulate_arrays  # noqa: E402
from scipion_2dclass.convert import (  # noqa: E402
    align_with_matrix,
    matrix_to_pose,
    read_job,
    write_particles_star,
)
from scipion_2dclass.protocols import ProtTwoDClassify, ProtTwoDSelect  # noqa: E402
from scipion_2dclass.protocols.protocol_classify import fill_classes  # noqa: E402
from tests.helpers_scipion import (  # noqa: E402
    write_fake_job,
    write_particles_sqlite,
    write_stack,
)

pytestmark = pytest.mark.scipion
log = logging.getLogger(__name__)

N, VIEWS, BOX, APIX = 420, 3, 64, 3.0
SMALL_BOX, SMALL_APIX = 48, 4.0  # class averages on a Fourier-cropped box


# --------------------------------------------------------------------------- image helpers
def fourier_crop(img: np.ndarray, b: int) -> np.ndarray:
    n = img.shape[-1]
    s = (n - b) // 2
    f = np.fft.fftshift(np.fft.fft2(img))[s : s + b, s : s + b]
    return np.real(np.fft.ifft2(np.fft.ifftshift(f))) * (b * b) / (n * n)


def low_pass(img: np.ndarray, apix: float, res_A: float) -> np.ndarray:
    f = np.fft.fftfreq(img.shape[-1], apix)
    fx, fy = np.meshgrid(f, f)
    return np.real(np.fft.ifft2(np.fft.fft2(img) * (np.hypot(fx, fy) < 1.0 / res_A)))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def anisotropic(img: np.ndarray) -> np.ndarray:
    """The image minus its rotational average: the part that tells rotations apart."""
    n = img.shape[-1]
    y, x = np.mgrid[0:n, 0:n] - n // 2
    r = np.rint(np.hypot(x, y)).astype(int)
    profile = np.bincount(r.ravel(), img.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    return img - profile[r]


def mirror_rotation(m: np.ndarray) -> np.ndarray:
    """The same matrix with the opposite rotation (the wrong convention)."""
    w = m.copy()
    w[:2, :2] = m[:2, :2].T
    return w


def class_alignment_scores(
    classes, clean: np.ndarray, averages: np.ndarray, avg_apix: float, res_A: float = 10.0
) -> list[tuple[float, float]]:
    """Per class: median over members of the correlation between the aligned noise-free
    member and the class average (low-passed to ``res_A``, rotational averages removed), for
    the Transform as stored and for the opposite rotation (the wrong convention)."""
    out = []
    for cls in classes.iterItems(orderBy="id"):
        avg = averages[cls.getObjId() - 1]
        b = avg.shape[-1]
        ref = anisotropic(low_pass(avg, avg_apix, res_A))
        right, wrong = [], []
        for p in cls.iterItems():
            m = p.getTransform().getMatrix()
            img = clean[p.getObjId() - 1]
            for mat, acc in ((m, right), (mirror_rotation(m), wrong)):
                moved = fourier_crop(align_with_matrix(img, mat), b)
                acc.append(corr(anisotropic(low_pass(moved, avg_apix, res_A)), ref))
        out.append((float(np.median(right)), float(np.median(wrong))))
    return out


def assignment(classes) -> dict[int, int]:
    return {
        p.getObjId(): cls.getObjId()
        for cls in classes.iterItems(orderBy="id")
        for p in cls.iterItems()
    }


# --------------------------------------------------------------------------- tests
class TestTwoDClassProtocols(BaseTest):
    @classmethod
    def setUpClass(cls) -> None:
        cls._cwd = os.getcwd()
        setupTestProject(cls)
        sim = simulate_arrays(
            N, BOX, APIX, snr=0.1, junk_fraction=0.0, n_views=VIEWS, seed=5, return_clean=True
        )
        cls.sim = sim
        cls.clean = sim.clean  # noise-free and CTF-free
        truth = sim.truth
        cls.view = truth.tdcViewId.to_numpy(int) + 1  # 1-based true view of each particle
        cls.psi = truth.rlnAnglePsi.to_numpy(float)
        cls.ox_A = truth.rlnOriginXAngst.to_numpy(float)
        cls.oy_A = truth.rlnOriginYAngst.to_numpy(float)
        data = os.path.join(cls.proj.getPath(), "simulated")
        cls.stack = os.path.join(data, "particles.mrcs")
        write_stack(cls.stack, sim.images, APIX)
        cls.sqlite = os.path.join(data, "particles.sqlite")
        ctf = sim.ctf
        write_particles_sqlite(
            cls.sqlite,
            cls.stack,
            N,
            APIX,
            defocus_u=ctf.defocus_u_A,
            defocus_v=ctf.defocus_v_A,
            defocus_angle=ctf.defocus_angle_deg,
            voltage=300.0,
            cs=2.7,
            amp_contrast=0.1,
        )
        cls.protImport = cls._import(cls.sqlite, "import simulated")
        cls._classify = None

    @classmethod
    def tearDownClass(cls) -> None:
        os.chdir(cls._cwd)

    @classmethod
    def _import(cls, sqlite: str, label: str):
        prot = cls.newProtocol(
            ProtImportParticles,
            objLabel=label,
            importFrom=ProtImportParticles.IMPORT_FROM_SCIPION,
            sqliteFile=sqlite,
            samplingRate=APIX,
            voltage=300.0,
            sphericalAberration=2.7,
            amplitudeContrast=0.1,
            magnification=50000,
        )
        return cls.launchProtocol(prot)

    def _new_classify(self, label: str, inputs) -> ProtTwoDClassify:
        prot = self.newProtocol(
            ProtTwoDClassify,
            objLabel=label,
            n_classes=VIEWS,
            max_res_A=8.0,
            online_iters=6,
            batch_per_class=60,
            full_passes=1,
            numberOfThreads=2,
        )
        prot.inputParticles.set(inputs)
        prot.inputParticles.setExtended("outputParticles")
        return prot

    @classmethod
    def classified(cls) -> ProtTwoDClassify:
        """The end-to-end classification (run once, shared by the tests that need it)."""
        if cls._classify is None:
            prot = cls.newProtocol(
                ProtTwoDClassify,
                objLabel="twodclass 2D",
                n_classes=VIEWS,
                max_res_A=8.0,
                online_iters=6,
                batch_per_class=60,
                full_passes=1,
                numberOfThreads=2,
            )
            prot.inputParticles.set(cls.protImport)
            prot.inputParticles.setExtended("outputParticles")
            cls._classify = cls.launchProtocol(prot)
        return cls._classify

    # ------------------------------------------------------------------ no engine needed
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
            self.assertEqual(rep.getLocation(), (k, result.classes_path))
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
        self.assertNotAlmostEqual(result.classes_apix, APIX)
        # every particle carries the particle filter's statistics of run_data.star
        stats = {
            int(r["tdcScipionId"]): (r["tdcResidualLowRes"], r["tdcSignalLowRes"])
            for r in result.particle_rows()
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
            self.assertEqual(os.path.realpath(rep.getFileName()), result.classes_path)
            self.assertAlmostEqual(rep.getSamplingRate(), result.classes_apix, places=4)
            self.assertEqual(cls._tdc_particleCount.get(), cls.getSize())
            self.assertGreater(cls._tdc_resolution.get(), 2 * APIX)
        # every member's Transform maps it onto its class average
        scores = class_alignment_scores(classes, self.clean, result.averages(), result.classes_apix)
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

    def test_select_by_criteria(self):
        cprot = self.classified()
        classes = cprot.outputClasses
        sizes = {c.getObjId(): c.getSize() for c in classes}
        prot = self.newProtocol(
            ProtTwoDSelect,
            objLabel="select 1 3",
            useAuto=False,
            rejectIds="2",
            minParticles=10,
            removeOutliers=False,
        )
        prot.inputClasses.set(cprot)
        prot.inputClasses.setExtended("outputClasses")
        prot = self.launchProtocol(prot)
        self.assertEqual(prot.outputParticles.getSize(), sizes[1] + sizes[3])
        self.assertEqual({c.getObjId() for c in prot.outputClasses}, {1, 3})
        self.assertEqual(sum(c.getSize() for c in prot.outputClasses), sizes[1] + sizes[3])
        self.assertFalse(hasattr(prot, "outputRemovedParticles"))
        avgs = prot.outputAverages
        self.assertEqual(avgs.getSize(), 2)
        self.assertNotAlmostEqual(avgs.getSamplingRate(), APIX)
        self.assertEqual({a.getIndex() for a in avgs}, {1, 3})
        kept_ids = {p.getObjId() for p in prot.outputParticles}
        want = {pid for pid, k in assignment(classes).items() if k in (1, 3)}
        self.assertEqual(kept_ids, want)
        # the particles keep their alignment
        self.assertTrue(prot.outputParticles.hasAlignment2D())
        summary = "\n".join(prot.summary())
        self.assertIn("Kept 2 of 3 classes", summary)
        self.assertIn("class 2: rejected by id", summary)
        self.assertIn("Particle filter: off", summary)

    def test_select_filters_particles_as_twodclass_select(self):
        """With the particle filter (the default) the protocol keeps and removes exactly the
        particles that `twodclass select` writes to particles_selected/_removed.star."""
        from engine.select.selection import SelectionThresholds, write_selection

        cprot = self.classified()
        prot = self.newProtocol(
            ProtTwoDSelect, objLabel="select 1 3 filtered", useAuto=False, rejectIds="2"
        )
        prot.inputClasses.set(cprot)
        prot.inputClasses.setExtended("outputClasses")
        prot = self.launchProtocol(prot)
        out = self.proj.getTmpPath("cli_selection")
        paths = write_selection(
            cprot.getJobDir(), [1, 3], out_dir=out, particle_filter=SelectionThresholds()
        )
        cli_kept = starfile.read(paths["particles"], always_dict=True)["particles"]
        self.assertEqual(
            {p.getObjId() for p in prot.outputParticles}, set(cli_kept.tdcScipionId.astype(int))
        )
        self.assertEqual(
            {p.getObjId() for c in prot.outputClasses for p in c},
            set(cli_kept.tdcScipionId.astype(int)),
        )
        members = {pid for pid, k in assignment(cprot.outputClasses).items() if k in (1, 3)}
        summary = "\n".join(prot.summary())
        if "removed" not in paths:  # the engine's filter did not run: nothing removed
            self.assertEqual({p.getObjId() for p in prot.outputParticles}, members)
            return
        cli_gone = starfile.read(paths["removed"], always_dict=True)["particles"]
        gone = (
            {p.getObjId(): p._tdc_removedReason.get() for p in prot.outputRemovedParticles}
            if hasattr(prot, "outputRemovedParticles")
            else {}
        )
        self.assertEqual(
            gone,
            dict(zip(cli_gone.tdcScipionId.astype(int), cli_gone.tdcRemovedReason, strict=True)),
        )
        self.assertEqual(set(gone) | {p.getObjId() for p in prot.outputParticles}, members)
        with open(paths["json"]) as f:
            counts = json.load(f)["particle_filter"]["removed"]
        parts = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        log.info("particle filter on the engine's classes 1, 3: %s", counts)
        self.assertIn(
            f"Particle filter: {len(gone)} of {len(members)} particles of the "
            f"selected classes removed" + (f" ({parts})" if parts else ""),
            summary,
        )

    def test_select_automatic_and_resolution(self):
        cprot = self.classified()
        from scipion_2dclass.selection import auto_decisions

        decisions, _ = auto_decisions(cprot.getJobDir())
        self.assertIsNotNone(decisions)
        res = {c.getObjId(): c._tdc_resolution.get() for c in cprot.outputClasses}
        limit = sorted(res.values())[1] + 0.01  # two best classes pass
        prot = self.newProtocol(
            ProtTwoDSelect, objLabel="select auto", useAuto=True, maxResolution=limit
        )
        prot.inputClasses.set(cprot)
        prot.inputClasses.setExtended("outputClasses")
        want = {k for k in res if res[k] <= limit and decisions[k][0]}
        if not want:
            self.skipTest("automatic selection rejects every class of this small job")
        prot = self.launchProtocol(prot)
        self.assertEqual({c.getObjId() for c in prot.outputClasses}, want)
        summary = "\n".join(prot.summary())
        self.assertIn("automatic selection of", summary)
        for k in set(res) - want:
            self.assertIn(f"class {k}:", summary)

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

    def test_select_from_terminal_browser_selection(self):
        """Classes saved in `twodclass browse` (selection.json in the job) are kept exactly."""
        cprot = self.classified()
        prot = self.newProtocol(
            ProtTwoDSelect, objLabel="select saved", useSaved=True, minParticles=100000
        )  # criteria are ignored
        prot.inputClasses.set(cprot)
        prot.inputClasses.setExtended("outputClasses")
        job = cprot.getJobDir()
        if not os.path.exists(os.path.join(job, "selection.json")):
            self.assertIn("no selection saved", "\n".join(prot.validate()))
        from engine.io.star import read_star
        from engine.select.selection import SelectionThresholds, write_selection

        sizes = {c.getObjId(): c.getSize() for c in cprot.outputClasses}
        # saved with the browser's particle filter (strict, so that it removes some): the
        # output holds exactly the particles the browser saved, whatever the form says
        paths = write_selection(
            job, [2, 3], particle_filter=SelectionThresholds(max_residual_z=1.0, min_signal_z=1.0)
        )
        saved = read_star(paths["particles"])["particles"]
        prot.removeOutliers.set(False)
        try:
            self.assertEqual(prot.validate(), [])
            prot = self.launchProtocol(prot)
            # saved without the filter: every particle of the classes, form filter or not
            write_selection(job, [2, 3])
            prot2 = self.newProtocol(
                ProtTwoDSelect,
                objLabel="select saved, no filter",
                useSaved=True,
                removeOutliers=True,
            )
            prot2.inputClasses.set(cprot)
            prot2.inputClasses.setExtended("outputClasses")
            prot2 = self.launchProtocol(prot2)
        finally:
            for name in (
                "selection.json",
                "particles_selected.star",
                "particles_removed.star",
                "classes_selected.mrcs",
                "classes_selected.star",
            ):
                if os.path.exists(os.path.join(job, name)):
                    os.remove(os.path.join(job, name))
        self.assertEqual({c.getObjId() for c in prot.outputClasses}, {2, 3})
        self.assertLess(len(saved), sizes[2] + sizes[3])
        self.assertEqual(
            {int(p.getObjId()) for p in prot.outputParticles},
            set(saved["tdcScipionId"].astype(int)),
        )
        self.assertEqual(
            prot.outputParticles.getSize() + prot.outputRemovedParticles.getSize(),
            sizes[2] + sizes[3],
        )
        self.assertIn("class 1: not selected in the terminal browser", "\n".join(prot.summary()))
        self.assertEqual(prot2.outputParticles.getSize(), sizes[2] + sizes[3])
        self.assertFalse(hasattr(prot2, "outputRemovedParticles"))

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

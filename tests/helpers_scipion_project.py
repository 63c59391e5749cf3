"""The Scipion project shared by the protocol tests (needs scipion-pyworkflow and scipion-em).

:class:`ScipionProjectCase` imports 420 simulated particles (3 views, box 64, 3 Å/px, CTF)
from a Scipion sqlite into a headless test project and, on first use, classifies them end to
end with ProtTwoDClassify (:meth:`ScipionProjectCase.classified`). The image helpers compare
class averages with the noise-free truth.
"""

from __future__ import annotations

import os

import numpy as np
from pwem.protocols import ProtImportParticles
from pyworkflow.tests import BaseTest, setupTestProject

from engine.sim.simulate import simulate_arrays
from scipion_2dclass.convert import align_with_matrix
from scipion_2dclass.protocols import ProtTwoDClassify
from tests.helpers_scipion import write_particles_sqlite, write_stack

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


class ScipionProjectCase(BaseTest):
    """One Scipion project with 420 imported simulated particles (3 views, CTF) and, on
    first use, one end-to-end classification of them (:meth:`classified`)."""

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

"""ProtTwoDSelect in a real (headless) Scipion project, on the classes of ProtTwoDClassify.

The same project as tests/test_scipion_protocols.py (tests/helpers_scipion_project.py):
selection by criteria, automatically, from the terminal browser's saved selection, and the
particle filter of ``twodclass select``.
"""

from __future__ import annotations

import json
import logging
import os

import pytest

pytest.importorskip("pwem")

import starfile  # noqa: E402

from scipion_2dclass.protocols import ProtTwoDSelect  # noqa: E402

pytestmark = pytest.mark.scipion
log = logging.getLogger(__name__)


from tests.helpers_scipion_project import (  # noqa: E402
    APIX,
    ScipionProjectCase,
    assignment,
)


class TestTwoDSelectProtocol(ScipionProjectCase):
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
        from engine.select import SelectionThresholds, write_selection

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
        from engine.select import SelectionThresholds, write_selection

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

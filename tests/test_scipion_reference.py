"""ProtTwoDSelect with a reference map: the classes of the shared Scipion project (3 views of
the simulator's phantom) scored against the phantom, as ``twodclass select --reference``."""

from __future__ import annotations

import os
import re

import pytest

pytest.importorskip("pwem")

import mrcfile  # noqa: E402
from pwem.protocols import ProtImportVolumes  # noqa: E402

from engine.sim.phantom import phantom_volume  # noqa: E402
from scipion_2dclass.protocols import ProtTwoDSelect  # noqa: E402
from tests.helpers_scipion_project import APIX, BOX, ScipionProjectCase  # noqa: E402

pytestmark = pytest.mark.scipion


class TestTwoDSelectReference(ScipionProjectCase):
    def _import_map(self):
        path = os.path.join(self.proj.getPath(), "phantom.mrc")
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(phantom_volume(BOX))
            m.voxel_size = APIX
        prot = self.newProtocol(
            ProtImportVolumes, objLabel="phantom map", filesPath=path, samplingRate=APIX
        )
        return self.launchProtocol(prot)

    def test_select_scores_classes_against_the_map(self):
        cprot = self.classified()
        vprot = self._import_map()
        prot = self.newProtocol(
            ProtTwoDSelect,
            objLabel="select by reference",
            useAuto=False,
            removeOutliers=False,
            symmetryGroup="C1",
            minRefStructure=0.5,
        )
        prot.inputClasses.set(cprot)
        prot.inputClasses.setExtended("outputClasses")
        prot.referenceVolume.set(vprot.outputVolume)
        prot = self.launchProtocol(prot)
        scores = {c.getObjId(): c._tdcRefStructure.get() for c in prot.outputClasses}
        verdicts = {c.getObjId(): c._tdcRefVerdict.get() for c in prot.outputClasses}
        # three classes of three well-separated views: each a single view of the phantom
        assert len(scores) == 3, scores
        assert min(scores.values()) > 0.85, scores
        assert set(verdicts.values()) == {"single"}, verdicts
        views = {c._tdcRefView.get() for c in prot.outputClasses}
        assert views == {1, 2, 3}
        for a in prot.outputAverages:
            assert a._tdcRefStructure.get() == pytest.approx(scores[a.getObjId()])
        assert os.path.exists(prot._getExtraPath("reference_projections.mrcs"))
        summary = "\n".join(prot.summary())
        assert re.search(r"Reference \S*phantom\S*\.mrc \(C1\):", summary), summary
        assert "3 distinct views" in summary
        # a demanding minimum rejects them, with the reason
        prot2 = self.newProtocol(
            ProtTwoDSelect,
            objLabel="select by reference, strict",
            useAuto=False,
            removeOutliers=False,
            minRefStructure=0.9999,
            keepIds=str(max(scores, key=scores.get)),
        )
        prot2.inputClasses.set(cprot)
        prot2.inputClasses.setExtended("outputClasses")
        prot2.referenceVolume.set(vprot.outputVolume)
        prot2 = self.launchProtocol(prot2)
        assert prot2.outputClasses.getSize() == 1  # only the class kept by id
        assert "not a single view of the reference" in "\n".join(prot2.summary())

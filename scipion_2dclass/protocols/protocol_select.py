"""ProtTwoDSelect: keep the good 2D classes (criteria, explicit ids, automatic selection)."""

from __future__ import annotations

import json

from pwem.constants import ALIGN_NONE
from pwem.objects import SetOfAverages, SetOfClasses2D, SetOfParticles
from pwem.protocols.protocol_2d import Prot2D
from pyworkflow.object import String
from pyworkflow.protocol import params as pwparams
from pyworkflow.protocol.constants import LEVEL_ADVANCED

from ..constants import ATTR_RESOLUTION
from ..selection import (
    ClassInfo,
    Decision,
    auto_decisions,
    decide,
    find_job_dir,
    parse_ids,
    saved_selection,
)

__all__ = ["ProtTwoDSelect", "class_resolution"]

# resolution attributes of classes from this and other plugins (first found wins)
_RESOLUTION_ATTRS = (ATTR_RESOLUTION, "_rlnEstimatedResolution", "_cryosparc_resolution",
                     "_resolution")


def class_resolution(cls) -> float | None:
    for name in _RESOLUTION_ATTRS:
        attr = getattr(cls, name, None)
        if attr is not None and hasattr(attr, "get") and attr.get() is not None:
            try:
                return float(attr.get())
            except (TypeError, ValueError):
                continue
    return None


class ProtTwoDSelect(Prot2D):
    """Select 2D classes automatically and output their particles, averages and classes.

    Works on any SetOfClasses2D. Criteria: minimum number of particles, resolution better
    than a limit, classes to keep or reject by id. For classes from a twodclass 2D
    classification, the engine's automatic selection (per-class statistics of the job
    folder) can be applied as well. The summary lists every rejected class and why.
    """

    _label = "2D class selection"
    _possibleOutputs = {"outputParticles": SetOfParticles, "outputAverages": SetOfAverages,
                        "outputClasses": SetOfClasses2D}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._selection = String()

    def _defineParams(self, form) -> None:
        form.addSection(label="Input")
        form.addParam("inputClasses", pwparams.PointerParam, pointerClass="SetOfClasses2D",
                      important=True, label="Input 2D classes",
                      help="Classes of any 2D classification protocol.")
        form.addParam("useAuto", pwparams.BooleanParam, default=True,
                      label="Automatic selection (twodclass)",
                      help="For classes of a twodclass 2D classification: also apply the "
                           "engine's automatic class selection (junk, low signal, "
                           "off-centre...). Ignored for classes of other programs.")
        form.addParam("useSaved", pwparams.BooleanParam, default=False,
                      label="Use the selection from the terminal browser",
                      help="For classes of a twodclass 2D classification: keep exactly the "
                           "classes selected and saved (key s) in `twodclass browse` (the "
                           "viewer's 'Open terminal class browser'). The criteria below are "
                           "then ignored; 'Always keep/reject' still apply.")
        form.addParam("minParticles", pwparams.IntParam, default=0,
                      validators=[pwparams.GE(0)], label="Minimum particles per class",
                      help="Reject classes with fewer particles. 0 = no limit.")
        form.addParam("maxResolution", pwparams.FloatParam, default=0.0,
                      validators=[pwparams.GE(0)], label="Resolution better than (Å)",
                      help="Reject classes whose estimated resolution is worse (larger) "
                           "than this. 0 = no limit.")
        form.addParam("keepIds", pwparams.NumericRangeParam, default="",
                      label="Always keep classes",
                      help="Class ids kept whatever the criteria, e.g. '1 3-5 8'.")
        form.addParam("rejectIds", pwparams.NumericRangeParam, default="",
                      label="Always reject classes",
                      help="Class ids rejected whatever the criteria, e.g. '2 7'.")
        form.addParam("onlyListed", pwparams.BooleanParam, default=False,
                      expertLevel=LEVEL_ADVANCED, label="Keep only the listed classes",
                      help="Reject every class not in 'Always keep classes'.")

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self) -> None:
        self._insertFunctionStep(self.selectStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def getJobDir(self) -> str | None:
        """The twodclass job folder of the input classes (from the averages' file), if any."""
        first = self.inputClasses.get().getFirstItem()
        rep = first.getRepresentative() if first is not None else None
        return find_job_dir(rep.getFileName() if rep is not None else None)

    def _classInfos(self) -> list[ClassInfo]:
        return [ClassInfo(int(c.getObjId()), int(c.getSize()), class_resolution(c))
                for c in self.inputClasses.get().iterItems(orderBy="id")]

    def computeDecisions(self) -> tuple[list[Decision], str]:
        auto, note, saved = None, "automatic selection off", None
        if self.useSaved.get():
            saved, note = saved_selection(self.getJobDir())
            if saved is None:
                raise ValueError(note)
        elif self.useAuto.get():
            auto, note = auto_decisions(self.getJobDir())
        decisions = decide(self._classInfos(), min_particles=int(self.minParticles.get()),
                           max_resolution_A=float(self.maxResolution.get() or 0.0),
                           keep_ids=parse_ids(self.keepIds.get()),
                           reject_ids=parse_ids(self.rejectIds.get()),
                           only_listed=bool(self.onlyListed.get()), auto=auto, saved=saved)
        return decisions, note

    def selectStep(self) -> None:
        decisions, note = self.computeDecisions()
        self.info(note)
        for d in decisions:
            self.info(d.describe())
        record = {"note": note,
                  "decisions": [{"class": d.class_id, "keep": d.keep, "reasons": d.reasons}
                                for d in decisions]}
        with open(self._getExtraPath("selection.json"), "w") as f:
            json.dump(record, f, indent=1)
        self._selection.set(json.dumps(record))
        self._store(self._selection)

    def _record(self) -> dict | None:
        sel = getattr(self, "_selection", None)
        if sel is None or sel.get() is None:
            return None
        return json.loads(sel.get())

    def keptIds(self) -> set[int]:
        rec = self._record() or {"decisions": []}
        return {d["class"] for d in rec["decisions"] if d["keep"]}

    def createOutputStep(self) -> None:
        inputClasses = self.inputClasses.get()
        keep = self.keptIds()
        if not keep:
            raise ValueError("No class passed the selection; relax the criteria "
                             "(see the log for the reason of every class).")

        def selected(cls) -> bool:
            return cls.getObjId() in keep

        particles = self._createSetOfParticles()
        particles.copyInfo(inputClasses.getImages())
        particles.setAlignment(inputClasses.getFirstItem().getAlignment())
        particles.appendFromClasses(inputClasses, filterClassFunc=selected)

        averages = self._createSetOfAverages()
        averages.copyInfo(inputClasses.getImages())
        averages.setAlignment(ALIGN_NONE)
        averages.setSamplingRate(None)
        for cls in inputClasses.iterItems(orderBy="id"):
            if not (cls.isEnabled() and selected(cls)):
                continue
            rep = cls.getRepresentative().clone()
            if not averages.getSamplingRate():
                averages.setSamplingRate(rep.getSamplingRate() or cls.getSamplingRate())
            rep.setObjId(cls.getObjId())
            averages.append(rep)

        classes = self._createSetOfClasses2D(inputClasses.getImagesPointer())
        classes.copyInfo(inputClasses)
        classes.appendFromClasses(inputClasses, filterClassFunc=selected)

        self._defineOutputs(outputParticles=particles, outputAverages=averages,
                            outputClasses=classes)
        for out in (particles, averages, classes):
            self._defineSourceRelation(self.inputClasses, out)

    # ------------------------------------------------------------------ info
    def _validate(self) -> list[str]:
        errors = []
        classes = self.inputClasses.get()
        if classes is None:
            return ["Select the input classes."]
        for name in ("keepIds", "rejectIds"):
            try:
                parse_ids(getattr(self, name).get())
            except ValueError:
                errors.append(f"'{self.getParam(name).label.get()}': write class ids like "
                              f"'1 3-5 8'")
        if self.maxResolution.get() and classes.getSize():
            if class_resolution(classes.getFirstItem()) is None:
                errors.append("The input classes carry no resolution estimate: set "
                              "'Resolution better than' to 0.")
        if self.useSaved.get():
            saved, note = saved_selection(self.getJobDir())
            if saved is None:
                errors.append(f"'Use the selection from the terminal browser': {note}.")
        if self.onlyListed.get() and not (self.keepIds.get() or "").strip():
            errors.append("'Keep only the listed classes' needs 'Always keep classes'.")
        return errors

    def _summary(self) -> list[str]:
        rec = self._record()
        if rec is None:
            return ["Selection not done yet."]
        decisions = rec["decisions"]
        kept = [d for d in decisions if d["keep"]]
        lines = [f"Kept {len(kept)} of {len(decisions)} classes ({rec['note']})."]
        if hasattr(self, "outputParticles"):
            lines.append(f"{self.outputParticles.getSize()} particles selected.")
        rejected = [d for d in decisions if not d["keep"]]
        if rejected:
            lines.append("Rejected classes:")
            lines += [f"  class {d['class']}: {'; '.join(d['reasons'])}" for d in rejected]
        return lines

    def _methods(self) -> list[str]:
        rec = self._record()
        if rec is None:
            return []
        n_keep = sum(d["keep"] for d in rec["decisions"])
        return [f"{n_keep} of {len(rec['decisions'])} 2D classes were selected with "
                f"twodclass [twodclass2026]."]

    def _citations(self) -> list[str]:
        return ["twodclass2026"]

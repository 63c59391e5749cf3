"""ProtTwoDSelect: keep the good 2D classes (criteria, explicit ids, automatic selection,
optionally the score against a 3D reference map) and, for classes of a twodclass job, leave
out the outlier particles inside them."""

from __future__ import annotations

import json
import os

from pwem.constants import ALIGN_NONE
from pwem.objects import SetOfAverages, SetOfClasses2D, SetOfParticles
from pwem.protocols.protocol_2d import Prot2D
from pyworkflow.object import String
from pyworkflow.protocol import params as pwparams
from pyworkflow.protocol.constants import LEVEL_ADVANCED

from engine.select import SelectionThresholds

from ..constants import ATTR_REMOVED_REASON, DECISIONS_JSON
from ..selection import (
    FILTER_FIELDS,
    ClassSummary,
    Decision,
    FilterOutcome,
    auto_decisions,
    decide,
    find_job_dir,
    parse_ids,
    particle_filter,
    saved_filter_thresholds,
    saved_selection,
)
from .select_form import (
    REF_ATTRS,
    add_filter_params,
    add_reference_params,
    class_resolution,
    score_class_averages,
)

__all__ = ["ProtTwoDSelect", "add_filter_params", "class_resolution"]


class ProtTwoDSelect(Prot2D):
    """Select 2D classes automatically and output their particles, averages and classes.

    Works on any SetOfClasses2D. Criteria: minimum number of particles, resolution better
    than a limit, classes to keep or reject by id. For classes from a twodclass 2D
    classification, the engine's automatic selection (per-class statistics of the job
    folder) can be applied as well, and the particle filter removes single particles of the
    selected classes that do not look like their class-mates (aggregates, ice, carbon,
    empty picks); those are output apart, each with its reason. The summary lists every
    rejected class and why, and how many particles the filter removed and why.
    """

    _label = "2D class selection"
    _possibleOutputs = {
        "outputParticles": SetOfParticles,
        "outputAverages": SetOfAverages,
        "outputClasses": SetOfClasses2D,
        "outputRemovedParticles": SetOfParticles,
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._selection = String()

    def _defineParams(self, form) -> None:
        form.addSection(label="Input")
        form.addParam(
            "inputClasses",
            pwparams.PointerParam,
            pointerClass="SetOfClasses2D",
            important=True,
            label="Input 2D classes",
            help="Classes of any 2D classification protocol.",
        )
        form.addParam(
            "useAuto",
            pwparams.BooleanParam,
            default=True,
            label="Automatic selection (twodclass)",
            help="For classes of a twodclass 2D classification: also apply the "
            "engine's automatic class selection (junk, low signal, "
            "off-centre...). Ignored for classes of other programs.",
        )
        form.addParam(
            "useSaved",
            pwparams.BooleanParam,
            default=False,
            label="Use the selection from the terminal browser",
            help="For classes of a twodclass 2D classification: keep exactly the "
            "classes selected and saved (key s) in `twodclass browse` (the "
            "viewer's 'Open terminal class browser'), and its particle "
            "filter setting (key f), so the output holds the particles the "
            "browser saved. The criteria and the particle filter setting "
            "below are then ignored; 'Always keep/reject' still apply.",
        )
        form.addParam(
            "minParticles",
            pwparams.IntParam,
            default=0,
            validators=[pwparams.GE(0)],
            label="Minimum particles per class",
            help="Reject classes with fewer particles. 0 = no limit.",
        )
        form.addParam(
            "maxResolution",
            pwparams.FloatParam,
            default=0.0,
            validators=[pwparams.GE(0)],
            label="Resolution better than (Å)",
            help="Reject classes whose estimated resolution is worse (larger) "
            "than this. 0 = no limit.",
        )
        form.addParam(
            "keepIds",
            pwparams.NumericRangeParam,
            default="",
            label="Always keep classes",
            help="Class ids kept whatever the criteria, e.g. '1 3-5 8'.",
        )
        form.addParam(
            "rejectIds",
            pwparams.NumericRangeParam,
            default="",
            label="Always reject classes",
            help="Class ids rejected whatever the criteria, e.g. '2 7'.",
        )
        form.addParam(
            "onlyListed",
            pwparams.BooleanParam,
            default=False,
            expertLevel=LEVEL_ADVANCED,
            label="Keep only the listed classes",
            help="Reject every class not in 'Always keep classes'.",
        )
        form.addParam(
            "removeOutliers",
            pwparams.BooleanParam,
            default=True,
            label="Remove outlier particles",
            help="For classes of a twodclass 2D classification: leave out the "
            "particles of the selected classes that do not look like their "
            "class-mates (overlapping neighbours or aggregates, ice, carbon, "
            "empty or off-centre picks that landed in good classes), judged by "
            "the per-particle statistics of the job (run_data.star: "
            "tdcResidualLowRes, tdcSignalLowRes) with the thresholds below. "
            "They are output apart (outputRemovedParticles), each with its "
            "reason, so nothing is lost. Ignored for classes of other programs. "
            "(twodclass select; No = --no-particle-filter)",
        )
        add_filter_params(form)
        add_reference_params(form)

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self) -> None:
        self._insertFunctionStep(self.selectStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def getJobDir(self) -> str | None:
        """The twodclass job folder of the input classes (from the averages' file), if any."""
        first = self.inputClasses.get().getFirstItem()
        rep = first.getRepresentative() if first is not None else None
        return find_job_dir(rep.getFileName() if rep is not None else None)

    def _classInfos(self) -> list[ClassSummary]:
        return [
            ClassSummary(int(c.getObjId()), int(c.getSize()), class_resolution(c))
            for c in self.inputClasses.get().iterItems(orderBy="id")
        ]

    def referenceScores(self) -> dict | None:
        """Score the input class averages against the reference map (None without one):
        ``{"map", "symmetry", "summary", "classes": {id: {structure, ...}}}``; the best
        projections go to ``extra/reference_projections.mrcs``."""
        vol = self.referenceVolume.get() if self.referenceVolume.hasValue() else None
        if vol is None:
            return None
        return score_class_averages(
            self.inputClasses.get(),
            vol,
            self.symmetryGroup.get() or "C1",
            self.getJobDir(),
            self._getExtraPath(),
        )

    def computeDecisions(self) -> tuple[list[Decision], str]:
        auto, note, saved = None, "automatic selection off", None
        if self.useSaved.get():
            saved, note = saved_selection(self.getJobDir())
            if saved is None:
                raise ValueError(note)
        elif self.useAuto.get():
            auto, note = auto_decisions(self.getJobDir())
        decisions = decide(
            self._classInfos(),
            min_particles=int(self.minParticles.get()),
            max_resolution_A=float(self.maxResolution.get() or 0.0),
            keep_ids=parse_ids(self.keepIds.get()),
            reject_ids=parse_ids(self.rejectIds.get()),
            only_listed=bool(self.onlyListed.get()),
            auto=auto,
            saved=saved,
        )
        return decisions, note

    def applyReferenceCriterion(self, decisions: list[Decision], reference: dict | None) -> None:
        """Reject the kept classes whose structure score is below 'Minimum reference
        structure score' (classes in 'Always keep classes' stay)."""
        limit = float(self.minRefStructure.get() or 0.0)
        if reference is None or limit <= 0:
            return
        always = parse_ids(self.keepIds.get())
        for d in decisions:
            s = reference["classes"].get(str(d.class_id), {}).get("structure")
            if d.keep and d.class_id not in always and s is not None and s < limit:
                d.keep = False
                d.reasons.append(
                    f"not a single view of the reference (structure {s:.2f} < {limit:.2f})"
                )

    def filterThresholds(self) -> SelectionThresholds | None:
        """The particle filter's thresholds, or None when it is off: those of the form, or,
        with 'Use the selection from the terminal browser', those saved with it."""
        if self.useSaved.get():
            return saved_filter_thresholds(self.getJobDir())
        if not self.removeOutliers.get():
            return None
        return SelectionThresholds(**{n: float(getattr(self, n).get()) for n in FILTER_FIELDS})

    def computeParticleFilter(self, class_ids) -> FilterOutcome:
        """The particle filter on the classes ``class_ids`` (Scipion ids = job class numbers)."""
        thresholds = self.filterThresholds()
        images = self.inputClasses.get().getImages()

        def enabled_ids() -> list[int]:
            return [int(p.getObjId()) for p in images.iterItems(orderBy="id") if p.isEnabled()]

        return particle_filter(
            self.getJobDir() if thresholds is not None else None, class_ids, thresholds, enabled_ids
        )

    def selectStep(self) -> None:
        reference = self.referenceScores()
        decisions, note = self.computeDecisions()
        self.applyReferenceCriterion(decisions, reference)
        self.info(note)
        if reference is not None:
            self.info(reference["summary"])
        for d in decisions:
            self.info(d.describe())
        enabled = {int(c.getObjId()) for c in self.inputClasses.get().iterItems() if c.isEnabled()}
        kept = sorted(d.class_id for d in decisions if d.keep and d.class_id in enabled)
        pfilter = self.computeParticleFilter(kept)
        self.info(pfilter.summary)
        record = {
            "note": note,
            "decisions": [
                {"class": d.class_id, "keep": d.keep, "reasons": d.reasons} for d in decisions
            ],
            "particle_filter": {**pfilter.info, "summary": pfilter.summary},
            "reference": reference,
        }
        with open(self._getExtraPath(DECISIONS_JSON), "w") as f:
            json.dump(
                {
                    **record,
                    "removed_particles": {str(k): v for k, v in sorted(pfilter.removed.items())},
                },
                f,
                indent=1,
            )
        self._selection.set(json.dumps(record))
        self._store(self._selection)

    def removedParticles(self) -> dict[int, str]:
        """Scipion id -> reason of the particles the particle filter removed."""
        path = self._getExtraPath(DECISIONS_JSON)
        try:
            with open(path) as f:
                removed = json.load(f).get("removed_particles", {})
        except (OSError, ValueError):
            return {}
        return {int(k): str(v) for k, v in removed.items()}

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
            raise ValueError(
                "No class passed the selection; relax the criteria "
                "(see the log for the reason of every class)."
            )

        def selected(cls) -> bool:
            return cls.getObjId() in keep

        removed = self.removedParticles()
        ref = ((self._record() or {}).get("reference") or {}).get("classes", {})

        def with_scores(obj, cid) -> None:
            for key, typ in REF_ATTRS.items():
                v = ref.get(str(int(cid)), {}).get(key)
                if v is not None:
                    setattr(obj, "_tdcRef" + key.capitalize(), typ(v))

        alignment = inputClasses.getFirstItem().getAlignment()
        particles = self._createSetOfParticles()
        particles.copyInfo(inputClasses.getImages())
        particles.setAlignment(alignment)
        gone = None
        if removed:
            gone = self._createSetOfParticles(suffix="_removed")
            gone.copyInfo(inputClasses.getImages())
            gone.setAlignment(alignment)
        classes = self._createSetOfClasses2D(inputClasses.getImagesPointer())
        classes.copyInfo(inputClasses)
        # the selected classes and their particles, less those the particle filter removed
        # (SetOfClasses2D.appendFromClasses, with a filter on the particles)
        for cls in inputClasses.iterItems(orderBy="id"):
            if not (cls.isEnabled() and selected(cls)):
                continue
            new_cls = classes.ITEM_TYPE()
            new_cls.copyInfo(cls)
            new_cls.setObjId(cls.getObjId())
            with_scores(new_cls, cls.getObjId())
            classes.append(new_cls)
            for img in cls.iterItems(orderBy="id"):
                if not img.isEnabled():
                    continue
                why = removed.get(int(img.getObjId()))
                if why is None:
                    particles.append(img)
                    new_cls.append(img)
                else:
                    img = img.clone()
                    setattr(img, ATTR_REMOVED_REASON, String(why))
                    gone.append(img)
            classes.update(new_cls)

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
            with_scores(rep, cls.getObjId())
            averages.append(rep)

        outputs = {
            "outputParticles": particles,
            "outputAverages": averages,
            "outputClasses": classes,
        }
        if gone is not None and gone.getSize():
            outputs["outputRemovedParticles"] = gone
        self._defineOutputs(**outputs)
        for out in outputs.values():
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
                errors.append(
                    f"'{self.getParam(name).label.get()}': write class ids like '1 3-5 8'"
                )
        if self.maxResolution.get() and classes.getSize():
            if class_resolution(classes.getFirstItem()) is None:
                errors.append(
                    "The input classes carry no resolution estimate: set "
                    "'Resolution better than' to 0."
                )
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
        pf = rec.get("particle_filter")
        if pf:
            text = pf["summary"][0].upper() + pf["summary"][1:]
            if hasattr(self, "outputRemovedParticles"):
                text += (
                    f"; the {self.outputRemovedParticles.getSize()} removed particles "
                    f"are in outputRemovedParticles"
                )
            lines.append(text + ".")
        if rec.get("reference"):
            r = rec["reference"]
            lines.append(f"Reference {os.path.basename(r['map'])} ({r['symmetry']}):")
            lines += r["summary"].split("\n")
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
        text = (
            f"{n_keep} of {len(rec['decisions'])} 2D classes were selected with "
            f"twodclass [twodclass2026]."
        )
        pf = rec.get("particle_filter") or {}
        if pf.get("applied"):
            tests = []
            if pf.get("max_residual_z"):
                tests.append(
                    f"the low-resolution power left unexplained by their "
                    f"aligned class average was more than {pf['max_residual_z']:g} "
                    f"robust standard deviations above the median"
                )
            if pf.get("min_signal_z"):
                tests.append(
                    f"their signal matched to the class average was more than "
                    f"{pf['min_signal_z']:g} robust standard deviations below the "
                    f"median"
                )
            text += (
                f" Particles of the selected classes were removed when "
                f"{' or when '.join(tests)} (medians over all particles of the selected "
                f"classes; {pf['n_removed']} of {pf['n_in_classes']} removed)."
            )
        return [text]

    def _citations(self) -> list[str]:
        return ["twodclass2026"]

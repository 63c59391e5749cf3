"""The select protocol's form sections (particle filter, reference map), read from the
engine's definitions, and the scoring of a set of class averages against a reference map."""

from __future__ import annotations

import dataclasses

import numpy as np
from pyworkflow.object import Float, Integer, String
from pyworkflow.protocol import params as pwparams
from pyworkflow.protocol.constants import LEVEL_ADVANCED

from engine.io.jobfolder import JobFiles
from engine.select import SelectionThresholds

from ..constants import ATTR_RESOLUTION
from ..selection import FILTER_FIELDS

__all__ = [
    "REF_ATTRS",
    "add_filter_params",
    "add_reference_params",
    "class_resolution",
    "score_class_averages",
]

# resolution attributes of classes from this and other plugins (first found wins)
_RESOLUTION_ATTRS = (
    ATTR_RESOLUTION,
    "_rlnEstimatedResolution",
    "_cryosparc_resolution",
    "_resolution",
)


def class_resolution(cls) -> float | None:
    for name in _RESOLUTION_ATTRS:
        attr = getattr(cls, name, None)
        if attr is not None and hasattr(attr, "get") and attr.get() is not None:
            try:
                return float(attr.get())
            except (TypeError, ValueError):
                continue
    return None


def add_filter_params(form) -> None:
    """The particle filter's thresholds, from ``SelectionThresholds``' field definitions
    (label, help, default, minimum), on the advanced level, shown when the filter is on."""
    fields = {f.name: f for f in dataclasses.fields(SelectionThresholds)}
    for name in FILTER_FIELDS:
        f = fields[name]
        md = f.metadata
        label = f"{md['label']} ({md['unit']})" if md.get("unit") else md["label"]
        validators = [pwparams.GE(md["min"])] if md.get("min") is not None else []
        form.addParam(
            name,
            pwparams.FloatParam,
            default=f.default,
            label=label,
            help=f"{md['help']} (twodclass select {md['flag']})",
            expertLevel=LEVEL_ADVANCED,
            condition="removeOutliers",
            validators=validators,
        )


def add_reference_params(form) -> None:
    """The optional reference map (``twodclass select --reference/--symmetry``) and the
    minimum structure score (``--min-ref-structure``, label and help from
    ``SelectionThresholds``)."""
    from engine.select.reference import CALIBRATION, NO_STRUCTURE_MAX, SINGLE_VIEW_MIN

    md = next(
        f.metadata for f in dataclasses.fields(SelectionThresholds) if f.name == "min_ref_structure"
    )
    form.addParam(
        "referenceVolume",
        pwparams.PointerParam,
        pointerClass="Volume",
        allowsNull=True,
        label="Reference map (optional)",
        help="Score every class against this 3D map (any box and pixel size): projections "
        "over the symmetry's asymmetric unit, each class matched over in-plane rotations "
        "and shifts (never mirrored), CTF-free, in the band 200-12 Å. A structure score "
        f"(rotational averages removed) >= {SINGLE_VIEW_MIN:.2f} calls a class a single "
        f"view, below {NO_STRUCTURE_MAX:.2f} without structure, blurred or mixed in "
        f"between ({CALIBRATION}). The scores, the matching direction and the view are "
        "attached to the output classes and averages (_tdcRef*). "
        "(twodclass select --reference)",
    )
    form.addParam(
        "symmetryGroup",
        pwparams.StringParam,
        default="C1",
        condition="referenceVolume",
        label="Symmetry of the map",
        help="C1, Cn or Dn with RELION's axes (twodclass select --symmetry).",
    )
    form.addParam(
        "minRefStructure",
        pwparams.FloatParam,
        default=0.0,
        condition="referenceVolume",
        label=md["label"],
        help=f"{md['help']} 0 = do not select by it. (twodclass select {md['flag']})",
    )


#: output attributes per class (``_tdcRef*``): reference.json key -> Scipion type
REF_ATTRS = {
    "structure": Float,
    "correlation": Float,
    "verdict": String,
    "view": Integer,
    "rot": Float,
    "tilt": Float,
    "psi": Float,
}


def score_class_averages(
    classes, volume, symmetry: str, job_dir: str | None, extra_dir: str
) -> dict:
    """Score the averages of a SetOfClasses2D against a Volume (engine.select.score_images):
    ``{"map", "symmetry", "seconds", "summary", "classes": {id: {structure, ...}}}``; the
    best projections go to ``reference_projections.mrcs`` in ``extra_dir``."""
    from engine.io.jobfolder import load_job
    from engine.io.mrc import open_stack, write_stack
    from engine.select.reference_job import reference_summary, score_images

    ids, images, counts, apix = [], [], [], 0.0
    for cls in classes.iterItems(orderBy="id"):
        rep = cls.getRepresentative()
        index, fname = rep.getLocation()
        arr, file_apix = open_stack(fname.split(":")[0])
        images.append(np.array(arr[max(int(index or 1), 1) - 1], dtype=np.float32))
        ids.append(int(cls.getObjId()))
        counts.append(int(cls.getSize()))
        apix = apix or rep.getSamplingRate() or cls.getSamplingRate() or file_apix
    diameter = load_job(job_dir, read_data=False).diameter_A if job_dir else None
    fname = volume.getFileName().split(":")[0]
    scores = score_images(
        np.stack(images), float(apix), fname, symmetry,
        map_apix_A=volume.getSamplingRate(), diameter_A=diameter, weights=np.array(counts),
    )  # fmt: skip
    projections = JobFiles(extra_dir).reference_projections
    write_stack(str(projections), scores.projections, apix)
    table = scores.table()
    summ = reference_summary(table, np.array(counts), np.array(ids))
    keys = dict(zip(REF_ATTRS, ("tdcRefStructure", "tdcRefCorrelation", "tdcRefVerdict",
                                "tdcRefView", "tdcRefRot", "tdcRefTilt", "tdcRefPsi"),
                    strict=True))  # fmt: skip
    out_classes = {
        str(cid): {k: table[col].iloc[i].item() if hasattr(table[col].iloc[i], "item")
                   else table[col].iloc[i] for k, col in keys.items()}
        for i, cid in enumerate(ids)
    }  # fmt: skip
    return {
        "map": fname,
        "symmetry": scores.symmetry,
        "seconds": round(scores.seconds, 1),
        "summary": summ["text"],
        "classes": out_classes,
    }

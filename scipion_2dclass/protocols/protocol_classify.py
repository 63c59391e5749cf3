"""ProtTwoDClassify: 2D classification of a SetOfParticles with the twodclass engine."""

from __future__ import annotations

import os
import shlex

from pwem.objects import Float, Integer, SetOfClasses2D, Transform
from pwem.protocols import ProtClassify2D
from pyworkflow.protocol import params as pwparams

from engine.errors import InputError
from engine.io.claim import job_status
from engine.io.jobfolder import Job, JobFiles, read_job_info
from engine.params import ClassifyParams, param_specs

from .. import engine_executable
from ..constants import (
    ATTR_DISTRIBUTION,
    ATTR_ESS,
    ATTR_LOGLIK,
    ATTR_MAX_PROB,
    ATTR_MEAN_MAX_PROB,
    ATTR_PARTICLE_COUNT,
    ATTR_RESOLUTION,
    INPUT_STACKS_DIR,
    INPUT_STAR,
    PARTICLE_STAT_ATTRS,
)
from ..convert import class_rows, pose_to_matrix, read_job, row_scipion_ids, write_particles_star
from .engine_form import add_engine_params, classify_params

__all__ = ["ProtTwoDClassify", "engine_arguments", "engine_messages"]


def engine_arguments(input_star: str, job_dir: str, params: ClassifyParams) -> list[str]:
    """``twodclass`` arguments for a job: a new run, or ``--resume`` of an interrupted one.

    When Scipion continues a protocol whose engine job was interrupted (``job.json`` says
    running / cancelled / failed and a checkpoint exists), the engine resumes from its last
    finished iteration; a finished or unusable job folder is overwritten.
    """
    files = JobFiles(job_dir)
    if files.job.exists() and files.checkpoint.parent.is_dir():
        try:
            status = job_status(job_dir, read_job_info(job_dir).get("status"))
        except InputError:
            status = None
        if status in ("running", "interrupted", "cancelled", "failed"):
            return [
                "run",
                "--resume",
                job_dir,
                "--progress",
                "jsonl",
                "--threads",
                str(params.threads),
            ]
    args = ["run", input_star, "-o", job_dir, "--progress", "jsonl"]
    if files.job.exists():
        args.append("--overwrite")
    return args + params.to_cli_args()


def engine_messages(errors: list[object]) -> list[str]:
    """Engine messages (problems or strings) speak in CLI flags; name the form's labels
    instead (flags kept)."""
    specs = sorted(param_specs(), key=lambda s: len(s.flag), reverse=True)
    out = []
    for problem in errors:
        msg = str(problem)
        for s in specs:
            if s.flag in msg:
                msg = msg.replace(s.flag, f"'{s.label}' ({s.flag[2:]})")
                break
        out.append(msg)
    return out


class ProtTwoDClassify(ProtClassify2D):
    """Fast maximum-likelihood 2D classification (twodclass).

    Online expectation-maximisation on random batches followed by full passes, with
    CTF-aware Wiener class averages and a polar-Fourier search over rotations and shifts.
    The parameters are those of cryoSPARC's 2D classification. Outputs the classes, each
    with its average, particle count and estimated resolution, and every particle with its
    class and in-plane alignment.
    """

    _label = "2D classification"
    _possibleOutputs = {"outputClasses": SetOfClasses2D}

    # ------------------------------------------------------------------ form
    def _defineParams(self, form) -> None:
        form.addSection(label="Input")
        form.addParam(
            "inputParticles",
            pwparams.PointerParam,
            pointerClass="SetOfParticles",
            important=True,
            label="Input particles",
            help="Particles to classify, with or without CTF. Existing 2D "
            "alignments are passed on to the engine.",
        )
        form.addSection(label="2D classification")
        add_engine_params(form)
        form.addParallelSection(threads=4, mpi=1)

    # ------------------------------------------------------------------ paths
    def getJobDir(self) -> str:
        """The engine's job folder (run_data.star, run_model.star, run_classes.mrcs)."""
        return self._getExtraPath()

    def _inputStar(self) -> str:
        return self._getExtraPath(INPUT_STAR)

    # ------------------------------------------------------------------ params
    def getEngineParams(self) -> ClassifyParams:
        """The engine parameters of this run (no CTF correction if the input has no CTF)."""
        params = classify_params(self, threads=self.numberOfThreads.get())
        parts = self.inputParticles.get()
        if parts is not None and not parts.hasCTF():
            params.ctf = False
        return params

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self) -> None:
        self._insertFunctionStep(
            self.convertInputStep, self.inputParticles.get().getObjId(), needsGPU=False
        )
        self._insertFunctionStep(self.classifyStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def convertInputStep(self, particlesId: int) -> None:  # noqa: ARG002 - re-run on change
        info = write_particles_star(
            self.inputParticles.get(), self._inputStar(), self._getExtraPath(INPUT_STACKS_DIR)
        )
        self.info(
            f"Wrote {info['n_particles']} particles ({info['n_stacks']} stack(s), box "
            f"{info['box']} px, {info['apix']:g} Å/px, CTF: {info['has_ctf']}, "
            f"2D alignment: {info['has_alignment']}) to {self._inputStar()}"
        )
        for path in info["missing_stacks"]:
            self.warning(f"Stack of the input particles not found: {path}")

    def classifyStep(self) -> None:
        args = engine_arguments(self._inputStar(), self.getJobDir(), self.getEngineParams())
        self.runJob(engine_executable(), " ".join(shlex.quote(a) for a in args))

    def createOutputStep(self) -> None:
        result = read_job(self.getJobDir())
        classes = self._createSetOfClasses2D(self.inputParticles)
        fill_classes(
            classes,
            result,
            self.inputParticles.get().getSamplingRate(),
            classes_path=self._getExtraPath(JobFiles(self.getJobDir()).classes.name),
        )
        self._defineOutputs(outputClasses=classes)
        self._defineSourceRelation(self.inputParticles, classes)

    # ------------------------------------------------------------------ info
    def _validate(self) -> list[str]:
        parts = self.inputParticles.get()
        if parts is None:
            return ["Select the input particles."]
        errors = []
        if not os.path.exists(engine_executable()):
            errors.append(f"twodclass engine not found: {engine_executable()}")
        apix = parts.getSamplingRate()
        if not apix or apix <= 0:
            return errors + [
                "The input particles have no pixel size (sampling rate): "
                "set it when importing them."
            ]
        try:
            params = self.getEngineParams()
        except (TypeError, ValueError) as exc:
            return errors + [f"Invalid parameters: {exc}"]
        errors += engine_messages(
            params.validate_for_data(int(parts.getSize()), int(parts.getXDim()), float(apix))
        )
        return errors

    def _summary(self) -> list[str]:
        if not hasattr(self, "outputClasses"):
            return ["Output classes not ready yet."]
        classes = self.outputClasses
        n = sum(c.getSize() for c in classes)
        lines = [
            f"{classes.getSize()} classes from {n} particles "
            f"({self.n_classes.get()} requested, maximum resolution "
            f"{self.max_res_A.get():g} Å)."
        ]
        sizes = []
        for c in classes.iterItems(orderBy="id"):
            res = getattr(c, ATTR_RESOLUTION, None)
            res_s = f", {res.get():.1f} Å" if res is not None and res.get() else ""
            sizes.append(f"{c.getObjId()}: {c.getSize()}{res_s}")
        lines.append("Class sizes (class: particles, resolution): " + "; ".join(sizes))
        return lines

    def _methods(self) -> list[str]:
        parts = self.inputParticles.get()
        if parts is None:
            return []
        p = self.getEngineParams()
        text = (
            f"{parts.getSize()} particles were classified into {p.n_classes} 2D classes "
            f"with twodclass [twodclass2026] (maximum-likelihood online EM, "
            f"{p.online_iters} online iterations of {p.batch_per_class} particles per "
            f"class, {p.full_passes} full pass(es), maximum resolution {p.max_res_A:g} Å, "
            f"initial uncertainty factor {p.uncertainty:g}"
            f"{', CTF corrected' if p.ctf else ''})."
        )
        return [text]

    def _citations(self) -> list[str]:
        return ["twodclass2026"]


# ---------------------------------------------------------------------- output
def _set_float(obj, name: str, value) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return
    setattr(obj, name, Float(v))


def _rows_in_item_order(images, result: Job) -> list[dict | None]:
    """``run_data`` rows in the order ``classifyItems`` visits the input items (by id):
    the row of each particle, ``None`` for particles the engine did not see (disabled).
    Rows map to particles by :func:`row_scipion_ids`.

    Built eagerly: a query on the input set while ``classifyItems`` iterates it would
    disturb that iteration."""
    rows = result.data.to_dict("records")
    ids = row_scipion_ids(
        result.data,
        lambda: [p.getObjId() for p in images.iterItems(orderBy="id") if p.isEnabled()],
    )
    if ids is None:
        raise ValueError(
            f"{JobFiles.of(result.job_dir).data}: {len(rows)} rows for a different "
            f"number of enabled input particles (was the input changed after "
            f"the run?)"
        )
    by_id = dict(zip(ids.tolist(), rows, strict=True))
    all_ids = sorted(int(i) for i in images.getIdSet())
    return [by_id.get(pid) for pid in all_ids]


def fill_classes(
    classes: SetOfClasses2D,
    result: Job,
    particle_apix: float,
    classes_path: str | None = None,
) -> None:
    """Fill ``classes`` (created on the input particles) from an engine job's results.

    ``classes_path``: how the representatives name the class-average stack (default: the
    absolute path; protocols pass their project-relative ``extra/run_classes.mrcs``)."""
    rows_of_class = class_rows(result)
    stack = classes_path or str(JobFiles.of(result.job_dir).classes)
    rows = iter(_rows_in_item_order(classes.getImages(), result))
    apix = float(particle_apix)

    def update_item(item, row: dict | None) -> None:
        if row is None:
            raise ValueError(
                f"{JobFiles.of(result.job_dir).data}: no row for particle "
                f"{item.getObjId()} (was the input changed after the run?)"
            )
        item.setClassId(int(row["rlnClassNumber"]))
        m = pose_to_matrix(
            float(row.get("rlnAnglePsi", 0.0)),
            float(row.get("rlnOriginXAngst", 0.0)) / apix,
            float(row.get("rlnOriginYAngst", 0.0)) / apix,
        )
        item.setTransform(Transform(m))
        if "rlnMaxValueProbDistribution" in row:
            _set_float(item, ATTR_MAX_PROB, row["rlnMaxValueProbDistribution"])
        if "rlnLogLikeliContribution" in row:
            _set_float(item, ATTR_LOGLIK, row["rlnLogLikeliContribution"])
        for column, attr in PARTICLE_STAT_ATTRS.items():
            if column in row:
                _set_float(item, attr, row[column])

    def update_class(cls) -> None:
        k = int(cls.getObjId())
        rep = cls.getRepresentative()
        rep.setLocation(k, stack)
        rep.setSamplingRate(result.apix_A)
        cls.setAlignment2D()
        row = rows_of_class.get(k, {})
        _set_float(cls, ATTR_RESOLUTION, row.get("rlnEstimatedResolution"))
        _set_float(cls, ATTR_DISTRIBUTION, row.get("rlnClassDistribution"))
        _set_float(cls, ATTR_ESS, row.get("tdcEffectiveSampleSize"))
        _set_float(cls, ATTR_MEAN_MAX_PROB, row.get("tdcMeanMaxProb"))
        if row.get("tdcParticleCount") is not None:
            setattr(cls, ATTR_PARTICLE_COUNT, Integer(int(row["tdcParticleCount"])))

    classes.classifyItems(
        updateItemCallback=update_item,
        updateClassCallback=update_class,
        itemDataIterator=rows,
        iterParams={"orderBy": "id"},
    )

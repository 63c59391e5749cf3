"""Every parameter of a 2D classification run, defined once.

The CLI flags (``twodclass run --help``), the terminal UI's job form and the Scipion
protocol's form are all generated from, or checked against, :class:`ClassifyParams`.
Each field carries its metadata: the CLI flag, a label as cryoSPARC/RELION users know it,
the unit, a one-line help text, the expert level and the valid range.

Names say the unit: ``max_res_A`` is in Angstrom, ``offset_range_A`` too.
``None`` means "choose automatically from the data" (stated in the help).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.fields import field_type, from_dict_strict, number_parser, range_problems, value_problem

__all__ = [
    "ClassifyParams",
    "ParamSpec",
    "Problem",
    "param_specs",
    "resolve_threads",
    "available_cpus",
    "mask_diameters_A",
]


def _p(
    default: Any,
    *,
    flag: str,
    label: str,
    help: str,
    unit: str = "",
    level: str = "basic",
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    meta = dict(
        flag=flag, label=label, help=help, unit=unit, level=level, min=min, max=max, choices=choices
    )
    return field(default=default, metadata=meta)


#: default inner mask diameter as a fraction of the box
DEFAULT_MASK_FRACTION = 0.85


@dataclass
class ClassifyParams:
    """Parameters of ``twodclass run`` (defaults follow cryoSPARC's 2D Classification job)."""

    # --- basic (cryoSPARC names) -------------------------------------------------------
    n_classes: int = _p(
        50,
        flag="--classes",
        label="Number of 2D classes",
        help="How many class averages to produce.",
        min=1,
        max=2000,
    )
    max_res_A: float = _p(
        6.0,
        flag="--max-res",
        label="Maximum resolution",
        unit="Å",
        help="Highest resolution used for alignment and class averages; "
        "particles are Fourier-cropped to it once.",
        min=0.1,
    )
    uncertainty: float = _p(
        2.0,
        flag="--uncertainty",
        label="Initial classification uncertainty factor",
        help="Annealing temperature at the start, decaying to 1. Higher = "
        "slower, more diverse classes; lower = quicker, more junk "
        "classes.",
        min=1.0,
        max=100.0,
    )
    diameter_A: float | None = _p(
        None,
        flag="--diameter",
        label="Circular mask diameter",
        unit="Å",
        help="Inner diameter of the circular mask; default: 85% of the box.",
        min=1.0,
    )
    diameter_outer_A: float | None = _p(
        None,
        flag="--diameter-outer",
        label="Circular mask diameter outer",
        unit="Å",
        help="Soft mask edge ends here; default: 1.2 x inner diameter, capped at the box.",
        min=1.0,
    )
    online_iters: int = _p(
        20,
        flag="--online-iters",
        label="Number of online-EM iterations",
        help="Online-EM iterations on random batches (30-40 for small particles).",
        min=0,
        max=10000,
    )
    batch_per_class: int = _p(
        100,
        flag="--batch-per-class",
        label="Batchsize per class",
        help="Particles per class in each online-EM batch (200-300 for small particles).",
        min=1,
        max=100000,
    )
    full_passes: int = _p(
        1,
        flag="--full-passes",
        label="Number of final full iterations",
        help="Full passes over all particles after the online iterations; the "
        "last one gives the final assignment.",
        min=0,
        max=100,
    )
    # --- advanced ----------------------------------------------------------------------
    force_max: bool = _p(
        True,
        flag="--force-max",
        label="Force max over poses/shifts",
        help="Keep only the best rotation and shift per class (fast); off = "
        "marginalise over all poses (better for small, low-SNR particles).",
        level="advanced",
    )
    min_res_align_A: float | None = _p(
        None,
        flag="--min-res-align",
        label="Minimum alignment resolution",
        unit="Å",
        help="Ignore Fourier components coarser than this in alignment; default: use "
        "everything. Noisy particles align mostly on the low resolutions (simulated, SNR "
        "0.05: 40 Å kept the classes, 25 Å lost them).",
        level="advanced",
        min=1.0,
    )
    psi_step_deg: float = _p(
        5.0,
        flag="--psi-step",
        label="In-plane angular sampling",
        unit="deg",
        help="Rotation search step, rounded to 360/2^n "
        "(5 -> 5.6 deg, 64 rotations), refined between steps.",
        level="advanced",
        min=0.5,
        max=30.0,
    )
    offset_range_A: float | None = _p(
        None,
        flag="--offset-range",
        label="Offset search range",
        unit="Å",
        help="Translations searched in each iteration (around the current offset, see "
        "--local-offsets); default: 2.5 cropped pixels.",
        level="advanced",
        min=0.0,
    )
    offset_step_A: float | None = _p(
        None,
        flag="--offset-step",
        label="Offset search step",
        unit="Å",
        help="Translation sampling; default: one cropped pixel.",
        level="advanced",
        min=0.01,
    )
    offset_sigma_A: float | None = _p(
        None,
        flag="--offset-sigma",
        label="Offset prior width",
        unit="Å",
        help="Std. dev. of the Gaussian prior on the total particle offset (centred on the "
        "picked position); default: 10% of the box, or with --local-offsets estimated from "
        "the offsets, at most that.",
        level="advanced",
        min=0.01,
    )
    tau2_fudge: float = _p(
        2.0,
        flag="--tau2-fudge",
        label="Regularisation parameter T",
        help="RELION's T: weight of the data against the smoothness prior "
        "in the Wiener class averages written at the end (see --align-tau2-fudge).",
        level="advanced",
        min=0.1,
        max=100.0,
    )
    align_tau2_fudge: float | None = _p(
        None,
        flag="--align-tau2-fudge",
        label="Regularisation T of the alignment references",
        help="T of the class averages that particles are aligned to and classified "
        "against in every iteration. Below 1, a small, noisy class is smoothed more "
        "than a well-populated one and cannot hold particles that a sharp class of "
        "their view explains, so views gather in fewer, sharper classes and junk in "
        "its own (README, 'Why lower T for alignment'); default: 0.25 with CTF "
        "correction and at least 20 classes, else --tau2-fudge.",
        level="advanced",
        min=0.01,
        max=100.0,
    )
    ctf: bool = _p(
        True,
        flag="--ctf",
        label="Do CTF correction",
        help="Use the particles' CTF in alignment and averaging.",
        level="advanced",
    )
    ctf_intact_first_peak: bool = _p(
        False,
        flag="--ctf-intact-first-peak",
        label="Ignore CTFs until first peak",
        help="Treat the CTF as 1 up to its first maximum (for data with very low defocus).",
        level="advanced",
    )
    center_classes: bool = _p(
        True,
        flag="--center-classes",
        label="Re-center 2D classes",
        help="Shift each class average to its centre of mass in the first 75% of the "
        "online updates and once at the end (the averages written); members follow.",
        level="advanced",
    )
    local_offsets: bool = _p(
        True,
        flag="--local-offsets",
        label="Search around current offsets",
        help="Each iteration searches translations around the particle's current offset, so "
        "offsets accumulate (RELION's way; centres particles picked further off than the "
        "search range, up to 15% of the mask diameter); off = always around the box centre.",
        level="advanced",
    )
    search_origin: bool = _p(
        True,
        flag="--search-origin",
        label="Also search around the picked position",
        help="With --local-offsets: a particle whose offset is further from the picked "
        "position (the box centre) than the offset search range is also searched within one "
        "search step of the picked position, on the same masked pixels, and the better pose "
        "wins, so one wrong alignment cannot strand it off centre.",
        level="advanced",
    )
    half_batches: bool = _p(
        True,
        flag="--half-batches",
        label="Two half batches when a batch is the whole data set",
        help="When one online batch (batch size x classes) would hold every particle, each "
        "online iteration updates the class averages twice, from one half of the particles "
        "and then the other: twice the updates for the same particles visited (with fewer "
        "than 20 particles per class in a half, one update from all).",
        level="advanced",
    )
    reseed_dead: bool = _p(
        True,
        flag="--reseed-dead",
        label="Re-seed dead classes",
        help="Split the largest class into classes that lost their particles.",
        level="advanced",
    )
    # --- compute -----------------------------------------------------------------------
    threads: int = _p(
        0,
        flag="--threads",
        label="Threads",
        help="CPU threads of this process; 0 = the CPUs it may use (affinity, SLURM, cgroup).",
        level="compute",
        min=0,
        max=4096,
    )
    seed: int = _p(
        0,
        flag="--seed",
        label="Random seed",
        help="Seed for batches and initial classes; same seed + threads = same result.",
        level="compute",
        min=0,
    )

    # ------------------------------------------------------------------------------------
    def validate(self) -> list[Problem]:
        """The problems of these parameters (empty when valid).

        Each :class:`~engine.errors.Problem` names its option (``problem.option``, the CLI
        flag) and reads as one sentence (``str(problem)``). Values of the wrong type, NaN,
        infinity and values outside a field's range are problems, whichever face set them.
        """
        errs = range_problems(self)
        bad = {e.option for e in errs}
        if (
            self.diameter_A is not None
            and self.diameter_outer_A is not None
            and not bad & {"--diameter", "--diameter-outer"}
            and self.diameter_outer_A < self.diameter_A
        ):
            errs.append(Problem("--diameter-outer", "--diameter-outer must be >= --diameter"))
        if (
            self.min_res_align_A is not None
            and not bad & {"--min-res-align", "--max-res"}
            and self.min_res_align_A <= self.max_res_A
        ):
            errs.append(
                Problem(
                    "--min-res-align", "--min-res-align must be coarser (larger) than --max-res"
                )
            )
        if not bad & {"--online-iters", "--full-passes"} and (
            self.online_iters == 0 and self.full_passes == 0
        ):
            errs.append(
                Problem(
                    "--full-passes",
                    "--online-iters and --full-passes are both 0: at least one iteration is "
                    "needed to classify",
                )
            )
        return errs

    def validate_for_data(self, n_particles: int, box_px: int, apix_A: float) -> list[Problem]:
        """:meth:`validate`, and the problems that depend on the input: mask larger than the
        box, more classes than particles."""
        errs = self.validate()
        bad = {e.option for e in errs}
        box_A = box_px * apix_A
        if "--diameter" not in bad and self.diameter_A is not None and self.diameter_A > box_A:
            errs.append(
                Problem(
                    "--diameter",
                    f"--diameter {self.diameter_A:g} Å is larger than the box "
                    f"({box_px} px x {apix_A:g} Å = {box_A:g} Å)",
                )
            )
        if "--classes" not in bad and self.n_classes > n_particles:
            errs.append(
                Problem(
                    "--classes",
                    f"--classes {self.n_classes} is more than the {n_particles} particles",
                )
            )
        return errs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifyParams:
        return from_dict_strict(cls, d, "parameter")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def mask_diameters_A(self, box_px: int, apix_A: float) -> tuple[float, float]:
        """The run's circular mask, ``(inner, outer)`` diameters in Å, defaults filled in
        (:func:`mask_diameters_A`)."""
        return mask_diameters_A(box_px, apix_A, self.diameter_A, self.diameter_outer_A)

    def to_cli_args(self, changed_only: bool = False) -> list[str]:
        """``twodclass run`` arguments that give these parameters: booleans as ``--flag`` /
        ``--no-flag``, floats in full precision; ``changed_only``: only those that differ
        from the defaults. The one way the faces turn parameters into a command line."""
        out: list[str] = []
        for spec in param_specs():
            value = getattr(self, spec.name)
            if value is None or (changed_only and value == spec.default):
                continue
            if spec.type is bool:
                out.append(spec.flag if value else "--no-" + spec.flag[2:])
            elif isinstance(value, float):
                text = repr(value)
                out += [spec.flag, text[:-2] if text.endswith(".0") else text]
            else:
                out += [spec.flag, str(value)]
        return out


def mask_diameters_A(
    box_px: int,
    apix_A: float,
    diameter_A: float | None = None,
    diameter_outer_A: float | None = None,
) -> tuple[float, float]:
    """Circular mask ``(inner, outer)`` diameters in Å with the defaults of
    :class:`ClassifyParams`: inner 85% of the box, outer 1.2 x inner capped at the box, and
    never inside the inner one. The one place these defaults are computed."""
    box_A = box_px * apix_A
    inner = float(diameter_A) if diameter_A else DEFAULT_MASK_FRACTION * box_A
    outer = float(diameter_outer_A) if diameter_outer_A else min(1.2 * inner, box_A)
    return inner, max(outer, inner)


@dataclass(frozen=True)
class ParamSpec:
    """Metadata of one parameter, as the faces (CLI, TUI, Scipion) need it."""

    name: str
    type: type
    default: Any
    optional: bool
    flag: str
    label: str
    help: str
    unit: str
    level: str
    min: float | None
    max: float | None
    choices: tuple[str, ...] | None

    def check(self, value: Any) -> Problem | None:
        """The problem with ``value`` for this parameter (type, NaN/infinity, range), or None."""
        msg = value_problem(value, self.type, self.min, self.max, self.flag, self.optional)
        return None if msg is None else Problem(self.flag, msg)

    def parser(self) -> Any:
        """Strict text -> value for a number (argparse ``type=``): finite, in range."""
        return number_parser(self.type, self.min, self.max, self.flag)


def param_specs() -> list[ParamSpec]:
    """The parameters in display order, with type, default and metadata."""
    out = []
    for f in dataclasses.fields(ClassifyParams):
        typ, optional = field_type(f)
        out.append(
            ParamSpec(
                name=f.name,
                type=typ,
                default=f.default,
                optional=optional,
                **{
                    k: f.metadata[k]
                    for k in ("flag", "label", "help", "unit", "level", "min", "max", "choices")
                },
            )
        )
    return out


def resolve_threads(threads: int) -> int:
    """``threads``, or for 0 the CPUs this process may use (:func:`available_cpus`)."""
    if threads and threads > 0:
        return int(threads)
    return available_cpus()


def _cgroup_quota(root: str) -> float | None:
    """CPU quota (CPUs, may be fractional) of this process's cgroup, or None if unlimited."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    rel = {}
    for line in lines:  # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        _, ctrl, path = (line.split(":", 2) + ["", ""])[:3]
        for c in ctrl.split(",") if ctrl else [""]:
            rel[c] = path.lstrip("/")
    quotas = []
    for d in {os.path.join(root, rel.get("", "")), root}:  # v2: "max 100000" or "50000 100000"
        q = _read_words(os.path.join(d, "cpu.max"))
        if len(q) == 2 and q[0] != "max" and float(q[1]) > 0:
            quotas.append(float(q[0]) / float(q[1]))
    for ctrl in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # v1: quota -1 = unlimited
        for d in {os.path.join(root, ctrl, rel.get("cpu", "")), os.path.join(root, ctrl)}:
            q = _read_words(os.path.join(d, "cpu.cfs_quota_us"))
            t = _read_words(os.path.join(d, "cpu.cfs_period_us"))
            if q and t and float(q[0]) > 0 and float(t[0]) > 0:
                quotas.append(float(q[0]) / float(t[0]))
    return min(quotas) if quotas else None


def _read_words(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except (OSError, ValueError):
        return []


def available_cpus(
    environ: dict[str, str] | None = None, cgroup_root: str = "/sys/fs/cgroup"
) -> int:
    """CPUs this process may use: its CPU affinity, capped by ``SLURM_CPUS_PER_TASK`` and by
    its share of the machine's CPUs and of the cgroup CPU quota (containers, batch systems;
    rounded up) among the MPI processes on this node, at least 1."""
    env = os.environ if environ is None else environ
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        n = min(n, int(slurm))
    shared = float(os.cpu_count() or n)
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        shared = min(shared, math.ceil(quota - 1e-9))
    local = next((int(v) for k in _LOCAL_RANKS if (v := env.get(k, "")).isdigit()), 1)
    return max(1, min(n, int(shared) // max(local, 1)))


# processes of this MPI job on this node (Open MPI, MPICH/Hydra, PMIx)
_LOCAL_RANKS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMIX_LOCAL_SIZE")

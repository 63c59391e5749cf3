"""The protocol form generated from the engine's parameter definitions.

Every engine parameter (``engine.params.param_specs()``) becomes one form parameter with the
same name, label (plus unit), help, default and expert level, so that the Scipion form cannot
drift from the CLI and the terminal UI. The ``threads`` parameter comes from the parallel
section instead. :func:`classify_params` reads the form back into a ``ClassifyParams``, and
``ClassifyParams.to_cli_args`` turns that into ``twodclass run`` arguments.
"""

from __future__ import annotations

from pyworkflow.protocol import params as pwparams
from pyworkflow.protocol.constants import LEVEL_ADVANCED, LEVEL_NORMAL

from engine.params import ClassifyParams, ParamSpec, param_specs

from ..constants import PARALLEL_SPECS

__all__ = [
    "add_engine_params",
    "classify_params",
    "form_label",
    "form_specs",
    "spec_level",
]

_SECTION_BASIC = "basic"


def form_specs() -> list[ParamSpec]:
    """The engine parameters shown in the form (all but those of the parallel section)."""
    return [s for s in param_specs() if s.name not in PARALLEL_SPECS]


def spec_level(spec: ParamSpec) -> int:
    """Scipion expert level of an engine level: basic -> normal, others -> advanced."""
    return LEVEL_NORMAL if spec.level == _SECTION_BASIC else LEVEL_ADVANCED


def form_label(spec: ParamSpec) -> str:
    return f"{spec.label} ({spec.unit})" if spec.unit else spec.label


def _form_help(spec: ParamSpec) -> str:
    parts = [spec.help]
    if spec.optional:
        parts.append("Leave empty for the automatic choice.")
    rng = []
    if spec.min is not None:
        rng.append(f">= {spec.min:g}")
    if spec.max is not None:
        rng.append(f"<= {spec.max:g}")
    if rng:
        parts.append("Valid: " + ", ".join(rng) + (f" {spec.unit}." if spec.unit else "."))
    parts.append(f"(twodclass run {spec.flag})")
    return " ".join(parts)


def _validators(spec: ParamSpec) -> list:
    if spec.optional or spec.type is bool:
        return []  # ClassifyParams.validate() checks them, None included
    out = []
    if spec.min is not None:
        out.append(pwparams.GE(spec.min, error=f"{spec.label} must be >= {spec.min:g}"))
    if spec.max is not None:
        out.append(pwparams.LE(spec.max, error=f"{spec.label} must be <= {spec.max:g}"))
    return out


def add_engine_params(form) -> None:
    """Add every engine parameter to the current section of ``form``."""
    kinds = {int: pwparams.IntParam, float: pwparams.FloatParam, bool: pwparams.BooleanParam}
    for spec in form_specs():
        kw = dict(
            default=spec.default,
            label=form_label(spec),
            help=_form_help(spec),
            expertLevel=spec_level(spec),
        )
        if spec.type is not bool:
            kw["validators"] = _validators(spec)
        if spec.optional:
            kw["allowsNull"] = True
        form.addParam(spec.name, kinds[spec.type], **kw)


def classify_params(protocol, threads: int | None = None) -> ClassifyParams:
    """The ``ClassifyParams`` of a protocol's form (``threads`` from the parallel section)."""
    values = {}
    for spec in form_specs():
        v = getattr(protocol, spec.name).get()
        if v is not None and spec.type is not bool:
            v = spec.type(v)
        values[spec.name] = v
    if threads is not None:
        values["threads"] = int(threads)
    return ClassifyParams(**values)

"""``twodclass select JOBDIR``: explained class selection of a finished job, headless.

Prints one line per class (sorted by particle count): number, particles, resolution, the
key statistics, view family, decision and reason; writes ``particles_selected.star``,
``classes_selected.mrcs``, ``classes_selected.star`` and ``selection.json`` (into the job
folder or ``-o DIR``), and ``particles_removed.star`` with the particles of the selected
classes that the particle filter removed (:func:`engine.select.particle_outliers`); warns
when the selection drops the last class of a view family.

With ``--reference MAP`` (and ``--symmetry``) every class is first scored against the 3D map
(:func:`engine.select.reference_job.score_job`): its structure score, verdict (single view /
blurred / no structure) and matching direction are added to the table and stored in
``run_model.star`` (``_tdcRef*``), the best projections in ``reference_projections.mrcs``;
``--min-ref-structure`` then makes the score a selection criterion.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InputError, ParameterError
from engine.fields import field_type, number_parser
from engine.io.claim import claim_folder, holder, prepare_output_dir
from engine.io.jobfolder import load_job
from engine.select import (
    FILTER_OFF,
    SelectionThresholds,
    auto_select,
    parse_class_list,
    particle_outliers,
    view_coverage,
    write_selection,
)
from engine.select.reference import CALIBRATION, NO_STRUCTURE_MAX, SINGLE_VIEW_MIN
from engine.select.reference_job import reference_summary

__all__ = ["add_parser", "run", "format_table"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "select",
        help="select classes of a finished job (automatic, explained, or by number)",
        description="Select 2D classes of a finished job and write the selected particles. "
        "Without --classes the automatic selection is used (--auto).",
    )
    p.add_argument(
        "job_dir", metavar="JOBDIR", help="finished twodclass (or RELION Class2D) job folder"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--auto",
        action="store_true",
        help="automatic selection with the thresholds below (the default)",
    )
    mode.add_argument(
        "--classes",
        metavar="LIST",
        help="select these class numbers, e.g. 1,4,7-9 (the table still shows "
        "the automatic decision)",
    )
    p.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        default=None,
        help="write the selection files here (default: the job folder)",
    )
    p.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="print the table and warnings only, write nothing",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a selection already in the output folder (refused without it)",
    )
    p.add_argument(
        "--no-particle-filter",
        action="store_true",
        help="keep every particle of the selected classes (by default particles "
        "that do not look like their class-mates are removed: see "
        "--max-residual-z and --min-signal-z; they go to "
        "particles_removed.star)",
    )
    r = p.add_argument_group(
        "reference map",
        "Score every class against a 3D map: projections over a dense set of directions in "
        "the symmetry's asymmetric unit, each class matched over in-plane rotations and "
        "shifts (never mirrored), CTF-free, in the mask, 200-12 Å. The structure score "
        "(rotational averages removed) calls a class a single view at >= "
        f"{SINGLE_VIEW_MIN:.2f}, blurred or mixed below, no structure below "
        f"{NO_STRUCTURE_MAX:.2f}. Calibration on simulated averages (50-200 particles, "
        f"SNR 0.05): {CALIBRATION}. The scores go into run_model.star "
        "(_tdcRefStructure, _tdcRefCorrelation, _tdcRefVerdict, _tdcRefView, _tdcRefRot, "
        "_tdcRefTilt, _tdcRefPsi, _tdcRefShiftAngst) and the selection files.",
    )
    r.add_argument(
        "--reference",
        metavar="MAP",
        default=None,
        help="3D map (MRC) to score the classes against; box and pixel size may differ "
        "from the classes' (it is resampled)",
    )
    r.add_argument(
        "--symmetry",
        metavar="SYM",
        default="C1",
        help="point group of the map: C1, Cn or Dn, RELION's axes (default: C1)",
    )
    r.add_argument(
        "--map-apix",
        metavar="A",
        type=float,
        default=None,
        help="pixel size of the map in Å (default: from its header)",
    )
    g = p.add_argument_group("automatic selection thresholds")
    for f in dataclasses.fields(SelectionThresholds):
        md = f.metadata
        unit = f" [{md['unit']}]" if md.get("unit") else ""
        typ = int if field_type(f)[0] is int else float
        default = md.get("unset", "auto") if f.default is None else f"{f.default:g}"
        g.add_argument(
            md["flag"],
            dest=f"th_{f.name}",
            type=number_parser(typ, md.get("min"), md.get("max"), md["flag"]),
            default=None,
            metavar="N" if typ is int else "X",
            help=f"{md['help']}{unit} (default: {default})",
        )
    return p


def _thresholds(args: argparse.Namespace) -> SelectionThresholds:
    kw = {
        f.name: getattr(args, f"th_{f.name}")
        for f in dataclasses.fields(SelectionThresholds)
        if getattr(args, f"th_{f.name}", None) is not None
    }
    th = SelectionThresholds(**kw)
    errs = th.validate()
    if errs:
        raise ParameterError("; ".join(errs))
    return th


def format_table(table: pd.DataFrame, selected: set[int]) -> str:
    """The per-class table, sorted by particle count (largest first)."""
    ref = "tdcRefStructure" in table.columns
    hdr = (
        f"{'class':>5} {'ptcls':>6} {'res Å':>6} {'offs Å':>6} {'edge':>5} {'carbon':>6} "
        f"{'ice':>5} {'contr':>6} {'fam':>4}"
        + (f" {'ref':>5} {'view':<7}" if ref else "")
        + f"  {'decision':<8} reason"
    )
    lines = [hdr, "-" * len(hdr)]
    order = table.sort_values(["count", "class_number"], ascending=[False, True])
    for _, r in order.iterrows():
        c = int(r["class_number"])
        res = r["resolution_A"]
        res_s = "inf" if not np.isfinite(res) else f"{res:.1f}"
        dec = "keep" if c in selected else "drop"
        reason = str(r["reason"])
        if c in selected and not bool(r["selected"]):
            reason = f"by hand (auto: {reason})"
        elif c not in selected and bool(r["selected"]):
            reason = f"by hand (auto: {reason})"
        lines.append(
            f"{c:>5} {int(r['count']):>6} {res_s:>6} "
            f"{r['tdcCentreOffsetAngst']:>6.1f} {r['tdcEdgeSignalFraction']:>5.2f} "
            f"{r['tdcStraightEdge']:>6.2f} {r['tdcRingScore']:>5.2f} "
            f"{r['tdcContrast']:>6.1f} {int(r['family']):>4}"
            + (f" {r['tdcRefStructure']:>5.2f} {_view_label(r):<7}" if ref else "")
            + f"  {dec:<8} {reason}"
        )
    return "\n".join(lines)


def _unfinished(job: Any) -> InputError:
    """Why an unfinished job cannot be selected from, and what to do."""
    d = job.job_dir
    if job.status == "running":
        h = holder(d) or {}
        return InputError(
            d,
            f"the job is still running (pid {h.get('pid', '?')} on {h.get('host', '?')}): "
            "wait for it to finish",
        )
    if job.status in ("interrupted", "cancelled", "failed"):
        why = f": {job.info['error']}" if job.status == "failed" and job.info.get("error") else ""
        return InputError(
            d,
            f"the job did not finish (status: {job.status}{why}); resume it with "
            f"`twodclass run --resume {d}`",
        )
    return InputError(d, f"the job has not finished (status: {job.status}; no run_data.star)")


def _view_label(r: pd.Series) -> str:
    """``view 3``, ``blurred`` or ``none`` (the reference verdict of a table row)."""
    v = str(r["tdcRefVerdict"])
    return f"view {int(r['tdcRefView'])}" if v == "single" else v


def _score_reference(args: argparse.Namespace, job: Any) -> dict[str, Any]:
    """Score the classes against ``--reference``, keep the scores (unless --dry-run) and
    return what selection.json records."""
    from engine.select.reference_job import (
        attach_reference_scores,
        score_job,
        store_reference_scores,
    )

    print(
        f"scoring {job.n_classes} classes against {args.reference} ({args.symmetry})...",
        file=sys.stderr,
    )
    scores = score_job(job, args.reference, args.symmetry, map_apix_A=args.map_apix)
    if args.dry_run:
        attach_reference_scores(job, scores, args.reference)
    else:
        store_reference_scores(job, scores, args.reference)
    print(
        f"scored in {scores.seconds:.1f} s ({scores.n_directions['coarse']} coarse and "
        f"{scores.n_directions['fine']} fine directions)",
        file=sys.stderr,
    )
    return {"map": str(job.general["tdcReferenceMap"]), "symmetry": scores.symmetry}


def run(args: argparse.Namespace) -> int:
    th = _thresholds(args)
    job = load_job(args.job_dir, read_data=True)
    if job.data is None or job.status not in ("finished", "unknown"):
        raise _unfinished(job)
    reference = _score_reference(args, job) if args.reference else None
    table = auto_select(job, th)
    known = set(table["class_number"].tolist())
    manual = args.classes is not None
    if manual:
        chosen = parse_class_list(args.classes)
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise ParameterError(
                f"unknown class number(s) {', '.join(map(str, unknown))}: "
                f"the job has classes {min(known)}..{max(known)}"
            )
        selected = set(chosen)
    else:
        selected = set(table.loc[table["selected"], "class_number"].tolist())

    print(format_table(table, selected))
    cov = view_coverage(table, sorted(selected))
    n_cls = int(table.loc[table["class_number"].isin(selected), "count"].sum())
    n_all = int(table["count"].sum())
    limit = table.attrs.get("max_res_A", float("nan"))
    verdict = None if args.no_particle_filter else particle_outliers(job.data, selected, th)
    n_sel = n_cls if verdict is None else int(verdict.keep.sum())
    print(
        f"\n{len(selected)} of {len(table)} classes, {n_cls} particles in them; "
        f"resolution limit {limit:.1f} Å; {cov.summary()}"
    )
    print(verdict.summary() if verdict is not None else FILTER_OFF)
    if "tdcRefVerdict" in table.columns:
        summ = reference_summary(table, table["count"].to_numpy(), table["class_number"])
        print(summ["text"])
        reference = {
            "map": job.general.get("tdcReferenceMap"),
            "symmetry": job.general.get("tdcReferenceSymmetry"),
            **(reference or {}),
            **{k: v for k, v in summ.items() if k != "text"},
        }
    print(f"{n_sel} of {n_all} particles selected ({100.0 * n_sel / max(n_all, 1):.1f}%)")
    for w in cov.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not selected:
        raise ParameterError(
            "no class selected: nothing to write (loosen the thresholds or give --classes)"
        )
    if args.dry_run:
        return 0
    rmap = dict(zip(table["class_number"].tolist(), table["reason"].tolist(), strict=True))
    reasons = {c: (f"by hand (auto: {rmap[c]})" if manual else rmap[c]) for c in selected}
    out = prepare_output_dir(args.out if args.out is not None else job.job_dir, "-o")
    with claim_folder(out, "twodclass select"):
        paths = write_selection(
            job,
            sorted(selected),
            out_dir=out,
            reasons=reasons,
            thresholds=None if manual else th,
            coverage=cov,
            resolution_limit_A=None if manual else limit,
            particle_filter=verdict,
            overwrite=args.overwrite,
            reference=reference,
        )
    extra = f", {paths['removed'].name}" if "removed" in paths else ""
    print(
        f"wrote {paths['particles']} ({n_sel} particles), {paths['classes_mrcs'].name}, "
        f"{paths['classes_star'].name}, {paths['json'].name}{extra}"
    )
    return 0

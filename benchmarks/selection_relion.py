"""Our automatic selection on real particles, compared with what RELION's Class2D would keep.

Usage::

    python benchmarks/selection_relion.py JOBDIR RELION_DIR [--relion-keep-res 25.5]

JOBDIR is a finished ``twodclass run`` on the particles that RELION_DIR (a RELION Class2D
job folder with ``run_itNNN_data.star`` / ``run_itNNN_model.star``) classified, e.g. the
2,374 beta-galactosidase particles in ``../shared/data/Conecsion_sppractice``::

    twodclass run ../shared/data/Conecsion_sppractice/particles_ctf_official.star \\
        -o /tmp/bgal --diameter 200
    python benchmarks/selection_relion.py /tmp/bgal \\
        ../shared/data/Conecsion_sppractice/Class2D/job010

Prints (1) our selection of our classes with the reason for each class, (2) our selection
applied to RELION's own classes, and (3) per particle, how our selection (classes, then
classes + particle filter) agrees with "RELION's keep": the particles of RELION's classes at
``--relion-keep-res`` or better (RELION has no automatic selection; its sharp classes are what
a user keeps by eye). The final line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.io.jobfolder import load_job  # noqa: E402
from engine.select import auto_select, particle_outliers, view_coverage  # noqa: E402

COLUMNS = ["class_number", "count", "resolution_A", "family", "selected", "reason"]


def agreement(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """How a keep mask ``ours`` agrees with the reference keep mask ``ref``."""
    return {
        "kept": int(ours.sum()),
        "reference_kept": int(ref.sum()),
        "reference_kept_we_keep": round(float(ours[ref].mean()), 4),
        "reference_dropped_we_drop": round(float(1 - ours[~ref].mean()), 4),
        "agreement": round(float(np.mean(ours == ref)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job_dir", help="finished twodclass job on the same particles")
    ap.add_argument("relion_dir", help="RELION Class2D job folder")
    ap.add_argument(
        "--relion-keep-res",
        type=float,
        default=25.5,
        help="RELION classes at this resolution (Å) or better count as kept",
    )
    args = ap.parse_args(argv)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 110)

    job = load_job(args.job_dir)
    table = auto_select(job)
    ids = table.loc[table["selected"], "class_number"].tolist()
    verdict = particle_outliers(job.data, ids)
    print("== our classes, our selection")
    print(table[COLUMNS].sort_values("count", ascending=False).to_string(index=False))
    print(
        f"resolution limit {table.attrs['max_res_A']:.1f} Å; "
        f"{view_coverage(table, ids).summary()}; {verdict.summary()}"
    )

    rel = load_job(args.relion_dir)
    rtable = auto_select(rel)
    rsel = rtable.loc[rtable["selected"], "class_number"].tolist()
    res = np.asarray(rel.resolution_A, dtype=float)
    ref_classes = [
        int(c) for c, r in zip(rel.class_numbers, res, strict=True) if r <= args.relion_keep_res
    ]
    print(f"\n== RELION's classes, our selection: {rsel}")
    print(f"RELION's classes at {args.relion_keep_res:g} Å or better: {ref_classes}")

    ours = job.data[["rlnImageName", "rlnClassNumber"]].assign(
        in_classes=verdict.in_classes, keep=verdict.keep, reason=verdict.reason
    )
    m = ours.merge(
        rel.data[["rlnImageName", "rlnClassNumber"]].rename(
            columns={"rlnClassNumber": "relion_class"}
        ),
        on="rlnImageName",
    )
    ref = m["relion_class"].isin(ref_classes).to_numpy()
    by_classes = agreement(m["in_classes"].to_numpy(), ref)
    with_filter = agreement(m["keep"].to_numpy(), ref)
    removed = m[m["in_classes"] & ~m["keep"]]
    print(f"\n== per particle ({len(m)} matched by image name)")
    for name, a in (("classes", by_classes), ("classes + filter", with_filter)):
        print(
            f"{name:<17} we keep {a['kept']}, RELION's keep {a['reference_kept']}: of those "
            f"we keep {a['reference_kept_we_keep']:.3f}; of the rest we drop "
            f"{a['reference_dropped_we_drop']:.3f}; agreement {a['agreement']:.3f}"
        )
    print(
        f"particle filter removed {len(removed)}, of which {int(ref[removed.index].sum())} "
        "in RELION's kept classes"
    )
    print(
        json.dumps(
            {
                "our_selected_classes": ids,
                "relion_classes_we_select": rsel,
                "relion_keep_classes": ref_classes,
                "classes": by_classes,
                "classes_and_filter": with_filter,
                "particle_filter": verdict.to_dict(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

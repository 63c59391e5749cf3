"""``twodclass simulate -o DIR``: a simulated particle set with a known ground truth.

A thin command-line face over :func:`engine.sim.simulate.simulate`: writes
``DIR/particles.star`` (RELION 3.1, CTF per particle, no pose columns),
``DIR/particles.mrcs`` and ``DIR/truth.star`` (the true poses in RELION's convention,
``_tdcViewId`` (-1 = junk) and ``_tdcJunkKind``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.errors import ParameterError
from engine.fields import number_parser
from engine.sim.junk import JUNK_KINDS

__all__ = ["add_parser", "run"]


def _num(typ: type, flag: str) -> Any:
    """Strict number (finite; whole for int); ranges are checked by the simulator."""
    return number_parser(typ, None, None, flag)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated particle set with a known ground truth",
        description="Simulate cryo-EM particles: projections of a built-in asymmetric phantom "
        "(or of --map), rotated and shifted at random, CTF-modulated, noisy, "
        "with junk. Writes particles.star + particles.mrcs (the input for "
        "`twodclass run`) and truth.star (true poses, views and junk kinds).",
    )
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--particles",
        type=_num(int, "--particles"),
        default=1000,
        metavar="N",
        help="number of particles (default 1000)",
    )
    p.add_argument(
        "--box",
        type=_num(int, "--box"),
        default=128,
        metavar="PX",
        help="box size in pixels, even (default 128)",
    )
    p.add_argument(
        "--apix",
        type=_num(float, "--apix"),
        default=1.5,
        metavar="A",
        help="pixel size in Å (default 1.5)",
    )
    p.add_argument(
        "--snr",
        type=_num(float, "--snr"),
        default=0.05,
        help="signal variance inside the particle / noise variance (default 0.05)",
    )
    p.add_argument(
        "--views",
        type=_num(int, "--views"),
        default=None,
        metavar="K",
        help="draw particles from K well-separated views (true classes); "
        "default: uniformly random views",
    )
    p.add_argument(
        "--junk",
        type=_num(float, "--junk"),
        default=0.15,
        metavar="FRACTION",
        help="fraction of junk images (default 0.15)",
    )
    p.add_argument(
        "--junk-kinds",
        default=",".join(JUNK_KINDS),
        metavar="LIST",
        help=f"comma-separated junk kinds among {', '.join(JUNK_KINDS)} (default: all)",
    )
    p.add_argument(
        "--defocus",
        type=_num(float, "--defocus"),
        nargs=2,
        default=(1.0, 2.5),
        metavar=("MIN", "MAX"),
        help="defocus range in µm (default 1.0 2.5)",
    )
    p.add_argument(
        "--astigmatism",
        type=_num(float, "--astigmatism"),
        default=300.0,
        metavar="A",
        help="largest defocus astigmatism in Å (default 300)",
    )
    p.add_argument(
        "--voltage",
        type=_num(float, "--voltage"),
        default=300.0,
        metavar="KV",
        help="acceleration voltage in kV (default 300)",
    )
    p.add_argument(
        "--cs",
        type=_num(float, "--cs"),
        default=2.7,
        metavar="MM",
        help="spherical aberration in mm (default 2.7)",
    )
    p.add_argument(
        "--amp-contrast",
        type=_num(float, "--amp-contrast"),
        default=0.1,
        metavar="Q",
        help="amplitude contrast (default 0.1)",
    )
    p.add_argument(
        "--max-shift",
        type=_num(float, "--max-shift"),
        default=None,
        metavar="A",
        help="largest particle offset in Å (default 3%% of the box)",
    )
    p.add_argument("--no-ctf", action="store_true", help="no CTF (and no defocus columns)")
    p.add_argument(
        "--map",
        "--volume",
        dest="volume",
        metavar="MAP.mrc",
        default=None,
        help="project this cubic 3D map (.mrc) instead of the built-in phantom",
    )
    p.add_argument(
        "--phantom",
        choices=("compact", "elongated"),
        default="compact",
        help="shape of the built-in phantom (default compact)",
    )
    p.add_argument("--float16", action="store_true", help="store images as 16-bit floats")
    p.add_argument("--seed", type=_num(int, "--seed"), default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite a simulation already in DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return p


def _check(args: argparse.Namespace) -> tuple[str, ...]:
    errs = []
    kinds = tuple(k.strip() for k in args.junk_kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in JUNK_KINDS]
    if bad:
        errs.append(
            f"--junk-kinds: unknown kind(s) {', '.join(bad)} (choose among {', '.join(JUNK_KINDS)})"
        )
    lo, hi = args.defocus
    if not 0 < lo <= hi:
        errs.append(f"--defocus MIN MAX must satisfy 0 < MIN <= MAX (got {lo:g} {hi:g})")
    for flag, v in (("--voltage", args.voltage), ("--cs", args.cs)):
        if v <= 0:
            errs.append(f"{flag} must be > 0 (got {v:g})")
    if not 0 <= args.amp_contrast < 1:
        errs.append(f"--amp-contrast must be in [0, 1) (got {args.amp_contrast:g})")
    if args.astigmatism < 0:
        errs.append(f"--astigmatism must be >= 0 (got {args.astigmatism:g})")
    if args.max_shift is not None and args.max_shift < 0:
        errs.append(f"--max-shift must be >= 0 (got {args.max_shift:g})")
    if args.volume is not None and not Path(args.volume).is_file():
        errs.append(f"--map {args.volume}: file not found")
    if errs:
        raise ParameterError("; ".join(errs))
    return kinds


def run(args: argparse.Namespace) -> int:
    kinds = _check(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file, not a folder")
    existing = [
        out / n for n in ("particles.star", "particles.mrcs", "truth.star") if (out / n).exists()
    ]
    if existing and not args.force:
        raise ParameterError(
            f"{existing[0]} already exists; pass --force to overwrite or choose another folder"
        )
    show = not args.quiet and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\rsimulating: {done}/{total} particles", end="", file=sys.stderr, flush=True)

    from engine.sim.simulate import simulate

    res = simulate(
        out,
        n_particles=args.particles,
        box=args.box,
        apix_A=args.apix,
        map_path=args.volume,
        snr=args.snr,
        junk_fraction=args.junk,
        n_views=args.views,
        junk_kinds=kinds,
        defocus_range_um=tuple(args.defocus),
        astig_A=args.astigmatism,
        voltage_kV=args.voltage,
        cs_mm=args.cs,
        amp_contrast=args.amp_contrast,
        max_shift_A=args.max_shift,
        ctf=not args.no_ctf,
        seed=args.seed,
        float16=args.float16,
        progress=progress,
        phantom=args.phantom,
    )
    if show:
        print(file=sys.stderr)
    if not args.quiet:
        n_junk = int((res.truth["tdcViewId"] < 0).sum())
        print(
            f"wrote {res.n_particles} particles ({n_junk} junk; {res.box} px at "
            f"{res.apix_A:g} Å/px) in {res.seconds:.1f} s: {res.particles_star} "
            f"(truth: {res.truth_star})"
        )
    return 0

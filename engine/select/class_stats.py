"""Per-class statistics of 2D class averages, for explained class selection.

Pure functions on arrays. :func:`class_statistics` returns one row per class with our own
columns, which the engine appends to ``run_model.star``'s ``data_model_classes`` and
:mod:`engine.select.selection` turns into decisions with reasons. DataFrame columns are named as
starfile reads and writes them: ``tdcContrast`` in the table is ``_tdcContrast`` in the file.

Every measure works on a low-passed copy of the class average (``lowpass_A``, default
12 Å, never finer than 2.5 pixels) and inside the circular mask of the run:

``_tdcCentreOffsetAngst``
    distance of the density's centre of mass from the box centre (Å).
``_tdcEdgeSignalFraction``
    per-pixel variance in the ring at the mask edge (``0.8 r_in .. (r_in + r_out)/2``)
    divided by the sum of it and the variance in the centre (``r < 0.7 r_in``): about 0.0-0.1
    for a centred particle, 0.3-0.5 for a particle cut by the mask or off-centre.
``_tdcContrast``
    standard deviation of the low-passed average inside the mask over that of the
    high-frequency rest (a signal-to-noise ratio; white noise gives about 0.3).
``_tdcStraightEdge``
    coherence of the structure tensor summed over the inner disc: 1 for a straight edge
    (carbon), about 0.5 for a 3:1 rod, near 0 for a round or irregular particle.
``_tdcRingScore``
    fraction of the variance inside the mask explained by the rotational average about the
    density's centre: near 1 for a ring or blob without internal structure (ice).
``_tdcMaxSimilarity`` / ``_tdcNearestClass``
    rotation- and mirror-invariant normalised cross-correlation with the most similar other
    class (polar resampling about the centre of mass, each ring's mean removed so that two
    blobs of the same size do not look alike, correlation over psi by FFT).
``_tdcViewFamily``
    classes showing the same view (similarity >= ``family_similarity``, single linkage),
    numbered 1.. in order of decreasing particle count of the family.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.params import mask_diameters_A

__all__ = [
    "STAT_COLUMNS",
    "class_similarity",
    "class_statistics",
    "class_statistics_for_state",
    "similarity_matrix",
    "view_families",
]

#: the columns :func:`class_statistics` adds (besides ``tdcClassNumber``)
STAT_COLUMNS = (
    "tdcCentreOffsetAngst",
    "tdcEdgeSignalFraction",
    "tdcContrast",
    "tdcStraightEdge",
    "tdcRingScore",
    "tdcMaxSimilarity",
    "tdcNearestClass",
    "tdcViewFamily",
)

#: default similarity above which two classes show the same view
FAMILY_SIMILARITY = 0.85


def _lowpass(imgs: np.ndarray, apix_A: float, res_A: float) -> np.ndarray:
    """Gaussian low-pass, amplitude 0.5 at ``1/res_A``. ``(K, b, b)`` -> ``(K, b, b)`` float64."""
    b = imgs.shape[-1]
    fy = np.fft.fftfreq(b)[:, None]
    fx = np.fft.rfftfreq(b)[None, :]
    f = np.sqrt(fx**2 + fy**2) / apix_A  # 1/Å
    f0 = 1.0 / res_A
    filt = np.exp(-np.log(2.0) * (f / f0) ** 2)
    return np.fft.irfft2(np.fft.rfft2(imgs) * filt, s=(b, b), axes=(-2, -1))


def _radius(b: int, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    c = b // 2
    y, x = np.mgrid[0:b, 0:b].astype(np.float64)
    return np.hypot(x - c - cx, y - c - cy)


def _centre_of_mass(g: np.ndarray, disc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of the density (sign chosen by skewness) relative to the box centre, in px.

    g: ``(K, b, b)`` low-passed classes; disc: ``(b, b)`` bool. Returns ``(cx, cy)``, each ``(K,)``.
    """
    k, b, _ = g.shape
    c = b // 2
    y, x = np.mgrid[0:b, 0:b].astype(np.float64)
    vals = g[:, disc]  # (K, n)
    med = np.median(vals, axis=1, keepdims=True)
    dev = vals - med
    skew = np.mean((vals - vals.mean(axis=1, keepdims=True)) ** 3, axis=1)
    sign = np.where(skew < 0, -1.0, 1.0)[:, None]
    mass = np.clip(sign * dev, 0.0, None)
    tot = mass.sum(axis=1)
    tot = np.where(tot > 0, tot, 1.0)
    cx = (mass * (x[disc] - c)).sum(axis=1) / tot
    cy = (mass * (y[disc] - c)).sum(axis=1) / tot
    return cx, cy


def _structure_coherence(g: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Coherence ``(l1 - l2) / (l1 + l2)`` of the weighted summed structure tensor, ``(K,)``."""
    gy, gx = np.gradient(g, axis=(1, 2))
    jxx = (gx * gx * weight).sum(axis=(1, 2))
    jyy = (gy * gy * weight).sum(axis=(1, 2))
    jxy = (gx * gy * weight).sum(axis=(1, 2))
    tr = jxx + jyy
    diff = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return np.where(tr > 0, diff / np.where(tr > 0, tr, 1.0), 0.0)


def _ring_score(g: np.ndarray, r_in: float, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Fraction of the variance inside the disc explained by the rotational average, ``(K,)``."""
    k, b, _ = g.shape
    r0 = _radius(b)
    disc = r0 < r_in
    out = np.zeros(k)
    for i in range(k):
        r = _radius(b, cx[i], cy[i])[disc]
        v = g[i][disc]
        v = v - v.mean()
        tot = float((v * v).sum())
        if tot <= 0:
            continue
        bins = np.round(r).astype(np.int64)
        cnt = np.bincount(bins)
        s = np.bincount(bins, weights=v)
        prof = s / np.maximum(cnt, 1)
        resid = v - prof[bins]
        out[i] = 1.0 - float((resid * resid).sum()) / tot
    return out


def _polar(
    g: np.ndarray, cx: np.ndarray, cy: np.ndarray, r_max: float, n_psi: int = 72
) -> np.ndarray:
    """Polar resampling about each class's centre: ``(K, n_r, n_psi)``, radii 1..r_max px."""
    from engine.core.pose import sample_bilinear

    k, b, _ = g.shape
    c = b // 2
    radii = np.arange(1.0, max(r_max, 2.0) + 1e-9, 1.0)
    ang = 2 * np.pi * np.arange(n_psi) / n_psi
    px = radii[:, None] * np.cos(ang)[None, :]
    py = radii[:, None] * np.sin(ang)[None, :]
    out = np.empty((k, radii.size, n_psi))
    for i in range(k):
        out[i] = sample_bilinear(g[i], px + c + cx[i], py + c + cy[i])
    return out


def similarity_matrix(polar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation- and mirror-invariant normalised cross-correlation of polar images.

    Parameters
    ----------
    polar : ``(K, n_r, n_psi)`` float
        Images resampled on rings of radius ``1..n_r`` px (area weight ``r``).

    Returns
    -------
    sim : ``(K, K)`` float64
        Max over psi (and mirror) of the r-weighted NCC; 1 on the diagonal.
    psi_deg : ``(K, K)`` float64
        The rotation that gives it (for the non-mirrored match; informative only).
    """
    k, n_r, n_psi = polar.shape
    w = np.arange(1, n_r + 1, dtype=np.float64)[None, :, None]
    p = polar - (polar * w).sum(axis=(1, 2), keepdims=True) / (w.sum() * n_psi)
    norm = np.sqrt((p * p * w).sum(axis=(1, 2)))
    norm = np.where(norm > 0, norm, 1.0)
    p = p / norm[:, None, None]
    f = np.fft.rfft(p * np.sqrt(w), axis=2)  # (K, n_r, m)
    fm = np.fft.rfft(p[:, :, (-np.arange(n_psi)) % n_psi] * np.sqrt(w), axis=2)
    cc = np.fft.irfft(np.einsum("krm,lrm->klm", f, np.conj(f)), n=n_psi, axis=2)
    ccm = np.fft.irfft(np.einsum("krm,lrm->klm", f, np.conj(fm)), n=n_psi, axis=2)
    best = np.maximum(cc.max(axis=2), ccm.max(axis=2))
    psi = np.argmax(cc, axis=2) * 360.0 / n_psi
    np.fill_diagonal(best, 1.0)
    return best, psi


def _similarity(g: np.ndarray, cx: np.ndarray, cy: np.ndarray, r_in: float) -> np.ndarray:
    pol = _polar(g, cx, cy, r_max=0.9 * r_in)
    pol = pol - pol.mean(axis=2, keepdims=True)  # compare shapes, not radial profiles
    return similarity_matrix(pol)[0]


def class_similarity(
    classes: np.ndarray, apix_A: float, diameter_A: float | None = None, lowpass_A: float = 12.0
) -> np.ndarray:
    """Rotation- and mirror-invariant similarity of every pair of class averages.

    Parameters
    ----------
    classes : ``(K, b, b)`` float32 class averages.
    apix_A : pixel size (Å).
    diameter_A : inner mask diameter (Å); ``None``: 85% of the box.
    lowpass_A : low-pass before comparing (Å), never finer than 2.5 pixels.

    Returns
    -------
    ``(K, K)`` float64, 1 on the diagonal (the ``tdcMaxSimilarity`` measure).
    """
    imgs = np.asarray(classes, dtype=np.float64)
    k, b, _ = imgs.shape
    d_in, _ = mask_diameters_A(b, float(apix_A), diameter_A, None)
    r_in = min(d_in / 2 / float(apix_A), b / 2)
    g = _lowpass(imgs, float(apix_A), max(lowpass_A, 2.5 * float(apix_A)))
    cx, cy = _centre_of_mass(g, _radius(b) < r_in)
    return _similarity(g, cx, cy, r_in)


def view_families(
    sim: np.ndarray,
    threshold: float = FAMILY_SIMILARITY,
    counts: np.ndarray | None = None,
    member: np.ndarray | None = None,
) -> np.ndarray:
    """Group classes into view families by single linkage on similarity.

    Parameters
    ----------
    sim : ``(K, K)`` similarity matrix (:func:`similarity_matrix`).
    threshold : classes with similarity >= threshold are linked.
    counts : ``(K,)`` particle counts, to number families by decreasing size (default: equal).
    member : ``(K,)`` bool, classes allowed to link (others form families of their own).

    Returns
    -------
    ``(K,)`` int64 family ids 1..F, family 1 the largest.
    """
    k = sim.shape[0]
    counts = np.ones(k) if counts is None else np.asarray(counts, dtype=np.float64)
    member = np.ones(k, bool) if member is None else np.asarray(member, bool)
    parent = np.arange(k)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    for i in range(k):
        for j in range(i + 1, k):
            if member[i] and member[j] and sim[i, j] >= threshold:
                parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(k)])
    uniq = np.unique(roots)
    size = {r: counts[roots == r].sum() for r in uniq}
    first = {r: int(np.argmax(roots == r)) for r in uniq}
    order = sorted(uniq, key=lambda r: (-size[r], first[r]))
    fam_id = {r: n + 1 for n, r in enumerate(order)}
    return np.array([fam_id[r] for r in roots], dtype=np.int64)


def class_statistics(
    classes: np.ndarray,
    apix_A: float,
    diameter_A: float | None = None,
    diameter_outer_A: float | None = None,
    counts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    resolution_A: np.ndarray | None = None,
    lowpass_A: float = 12.0,
    family_similarity: float = FAMILY_SIMILARITY,
) -> pd.DataFrame:
    """Per-class statistics of class averages (one row per class, class-number order).

    Parameters
    ----------
    classes : ``(K, b, b)`` float32
        Class averages (``run_classes.mrcs``), box centre at ``(b//2, b//2)``.
    apix_A : float
        Pixel size of the class images (Å).
    diameter_A, diameter_outer_A : float or None
        The run's mask diameters (Å); ``None``: the run's defaults (85% of the box,
        1.2 x inner capped at the box).
    counts : ``(K,)`` int, optional
        Hard particle counts (``tdcParticleCount``): view families are numbered by
        decreasing count and empty classes never join a family.
    weights : ``(K,)`` float, optional
        Soft weights (``rlnClassDistribution``); used instead of ``counts`` when those
        are not given.
    resolution_A : ``(K,)`` float, optional
        ``rlnEstimatedResolution`` (Å); accepted for a stable signature, not used yet.
    lowpass_A : float
        Low-pass applied before measuring (Å); never finer than 2.5 pixels.
    family_similarity : float
        Similarity threshold that links two classes into one view family.

    Returns
    -------
    pandas.DataFrame
        ``K`` rows, class-number order: ``tdcClassNumber`` (1..K) and :data:`STAT_COLUMNS`
        (nothing else, so the engine can assign the columns to ``data_model_classes``).
    """
    imgs = np.asarray(classes, dtype=np.float64)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise ValueError(f"classes must be (K, b, b), got {imgs.shape}")
    k, b, _ = imgs.shape
    apix_A = float(apix_A)
    d_in, d_out = mask_diameters_A(b, apix_A, diameter_A, diameter_outer_A)
    r_in = min(d_in / 2 / apix_A, b / 2)
    r_out = min(d_out / 2 / apix_A, b / 2)
    r_edge_hi = min(max((r_in + r_out) / 2, r_in + 1.0), b / 2 - 0.5)

    g = _lowpass(imgs, apix_A, max(lowpass_A, 2.5 * apix_A))
    hp = imgs - g
    r = _radius(b)
    disc = r < r_in
    centre = r < 0.7 * r_in
    ring = (r >= 0.8 * r_in) & (r <= r_edge_hi)

    var_c = g[:, centre].var(axis=1)
    var_e = g[:, ring].var(axis=1)
    tot = var_c + var_e
    edge = np.where(tot > 0, var_e / np.where(tot > 0, tot, 1.0), 0.0)

    sd_hp = hp[:, disc].std(axis=1)
    sd_lp = g[:, disc].std(axis=1)
    contrast = np.where(sd_hp > 0, sd_lp / np.where(sd_hp > 0, sd_hp, 1.0), 0.0)

    cx, cy = _centre_of_mass(g, disc)
    offset_A = np.hypot(cx, cy) * apix_A

    taper = np.clip((0.9 * r_in - r) / 2.0, 0.0, 1.0)
    straight = _structure_coherence(g, taper)
    ringsc = _ring_score(g, r_in, cx, cy)

    if counts is not None:
        cnt = np.asarray(counts, dtype=np.float64)
    elif weights is not None:
        cnt = np.asarray(weights, dtype=np.float64)
    else:
        cnt = np.ones(k)
    if k > 1:
        sim = _similarity(g, cx, cy, r_in)
        off = sim.copy()
        np.fill_diagonal(off, -np.inf)
        nearest = np.argmax(off, axis=1)
        maxsim = off[np.arange(k), nearest]
        fam = view_families(sim, family_similarity, cnt, member=cnt > 0)
    else:
        nearest = np.zeros(1, dtype=np.int64) - 1
        maxsim = np.zeros(1)
        fam = np.ones(1, dtype=np.int64)

    df = pd.DataFrame(
        {
            "tdcClassNumber": np.arange(1, k + 1, dtype=np.int64),
            "tdcCentreOffsetAngst": offset_A,
            "tdcEdgeSignalFraction": edge,
            "tdcContrast": contrast,
            "tdcStraightEdge": straight,
            "tdcRingScore": ringsc,
            "tdcMaxSimilarity": maxsim,
            "tdcNearestClass": (nearest + 1).astype(np.int64),
            "tdcViewFamily": fam,
        }
    )
    return df


def class_statistics_for_state(state: Any, params: Any, data: Any, geo: Any) -> pd.DataFrame:
    """:func:`class_statistics` of an engine state, rows in the output's class order.

    The adapter ``twodclass run`` calls before writing ``run_model.star``: classes are
    reordered as :func:`engine.io.job_writer.class_order` numbers them, and the statistics columns
    (:data:`STAT_COLUMNS`, without ``tdcClassNumber``) are returned for
    ``write_model(extra_columns=...)``.
    """
    from engine.core.model import class_counts
    from engine.io.job_writer import class_order

    k = int(params.n_classes)
    order = class_order(state, k)
    counts = np.asarray(class_counts(state, k))[order]
    df = class_statistics(
        np.asarray(state.refs)[order],
        float(data.apix_small_A),
        float(geo.diameter_A),
        float(geo.diameter_outer_A),
        counts=counts,
    )
    return df[list(STAT_COLUMNS)]

"""Sixel encoding of grey images (numpy; no Pillow).

A Sixel image is a DCS string: a header with the raster size, colour registers
(``#i;2;r;g;b`` in percent) and bands of six pixel rows; in each band every colour used
draws one line of characters (``?`` + a 6-bit mask per column), lines of a band separated by
``$``, bands by ``-``. Runs of one character are written ``!n<char>``. The header asks for a
1:1 pixel aspect and a transparent background (pixels set by no colour keep what is on the
screen), so an image can be drawn inside a larger box with its margins left alone.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["encode_sixel", "SIXEL_LEVELS"]

SIXEL_LEVELS = 64
"""Grey levels (colour registers) per image: smooth class averages, ~1 KB per 64 x 17 px row."""

_RUN = re.compile(rb"(.)\1{3,}")
_BITS = (1 << np.arange(6, dtype=np.int32))[None, :, None]


def _rle(line: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%c" % (len(m.group(0)), m.group(1)[0]), line)


def encode_sixel(grey: np.ndarray, levels: int = SIXEL_LEVELS) -> str:
    """``(h, w)`` grey values (uint8 0-255; negative = transparent, as int16) -> a Sixel string.

    Returns ``""`` when every pixel is transparent.
    """
    g = np.asarray(grey)
    if g.ndim != 2:
        raise ValueError(f"expected a (h, w) image, got shape {g.shape}")
    h, w = g.shape
    opaque = g >= 0
    if not opaque.any():
        return ""
    idx = np.where(opaque, (np.clip(g, 0, 255).astype(np.int32) * (levels - 1) + 127) // 255, -1)
    used = np.unique(idx[opaque])
    head = [b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)]
    for c in used.tolist():
        p = round(100 * c / max(levels - 1, 1))
        head.append(b"#%d;2;%d;%d;%d" % (c, p, p, p))
    bands = []
    for b0 in range(0, h, 6):
        band = idx[b0 : b0 + 6]
        r = band.shape[0]
        colours = np.unique(band[band >= 0])
        if colours.size == 0:
            bands.append(b"")
            continue
        onehot = band[None, :, :] == colours[:, None, None]  # (C, r, w)
        bits = (onehot * _BITS[:, :r]).sum(axis=1)  # (C, w)
        chars = (bits + 63).astype(np.uint8)
        lines = []
        for ci, c in enumerate(colours.tolist()):
            nz = np.flatnonzero(bits[ci])
            lines.append(b"#%d" % c + _rle(chars[ci, : nz[-1] + 1].tobytes()))
        bands.append(b"$".join(lines))
    body = b"-".join(bands)
    return (b"".join(head) + body + b"\x1b\\").decode("ascii")

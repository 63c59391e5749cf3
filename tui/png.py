"""PNG files from numpy arrays, without Pillow (zlib + struct): for Kitty graphics and the
HTML report."""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["encode_png", "decode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(pixels: np.ndarray, level: int = 6) -> bytes:
    """``(h, w)`` uint8 grey or ``(h, w, 3)`` uint8 RGB -> PNG bytes (8 bits per sample)."""
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    if a.ndim == 2:
        colour_type, channels = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f"expected (h, w) or (h, w, 3) pixels, got shape {a.shape}")
    h, w = a.shape[:2]
    rows = a.reshape(h, w * channels)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, level))
        + _chunk(b"IEND", b"")
    )


def decode_png(data: bytes) -> np.ndarray:
    """Read back what :func:`encode_png` writes (8-bit grey or RGB, filter type 0 only)."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_SIGNATURE)
    idat = b""
    w = h = colour_type = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, colour_type = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour_type not in (0, 2):
                raise ValueError("only 8-bit grey or RGB PNG files are read")
        elif kind == b"IDAT":
            idat += body
    channels = 1 if colour_type == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    if np.any(raw[:, 0] != 0):
        raise ValueError("only PNG filter type 0 is read")
    px = raw[:, 1:]
    return px.reshape(h, w) if channels == 1 else px.reshape(h, w, 3)

"""Kitty graphics protocol with Unicode placeholders.

An image is sent once (PNG, base64, in chunks of 4096 bytes) with a virtual placement of
``cols x rows`` cells; the screen then shows it wherever cells hold the placeholder character
U+10EEEE with two combining diacritics (row, column) and the image id as foreground colour.
The cells are ordinary text to Textual, so scrolling and partial redraws need nothing
special. Images are sent on stdout (as textual-image does; Textual writes on stderr) before
the frame that shows them.
"""

from __future__ import annotations

import base64
import sys
import unicodedata
from itertools import count

from rich.color import Color
from rich.segment import Segment
from rich.style import Style

__all__ = [
    "PLACEHOLDER",
    "DIACRITICS",
    "transmit_sequence",
    "delete_sequence",
    "placeholder_line",
    "new_image_id",
    "send",
]

PLACEHOLDER = "\U0010eeee"

_EXCLUDED = {0x300, 0x301, 0x302, 0x303, 0x304, 0x306, 0x307, 0x308, 0x309, 0x30A, 0x30B}
_EXCLUDED |= {0x30C, 0x30F, 0x311, 0x313, 0x314, 0x342, 0x653, 0x654}

DIACRITICS: tuple[str, ...] = tuple(
    chr(c)
    for c in range(0x300, 0x830)
    if unicodedata.category(chr(c)) == "Mn"
    and unicodedata.combining(chr(c)) == 230
    and unicodedata.bidirectional(chr(c)) == "NSM"
    and not unicodedata.decomposition(chr(c))
    and c not in _EXCLUDED
)
"""Row/column numbers 0, 1, ... as combining marks (the protocol's rowcolumn-diacritics table,
Unicode 6.0 combining class 230 marks without decomposition; its first 129 entries)."""

_ids = count(1)


def new_image_id() -> int:
    """An image id in 1 .. 2^24 - 1 (the 24-bit foreground colour carries it)."""
    return next(_ids) % 0xFFFFFF or next(_ids)


def _apc(keys: str, payload: str = "") -> str:
    return f"\x1b_G{keys}{';' + payload if payload else ''}\x1b\\"


def transmit_sequence(image_id: int, png: bytes, cols: int, rows: int) -> str:
    """Send ``png`` as image ``image_id`` and place it virtually over ``cols x rows`` cells."""
    data = base64.standard_b64encode(png).decode("ascii")
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        keys = f"a=t,f=100,i={image_id},q=2,m={more}" if n == 0 else f"m={more}"
        out.append(_apc(keys, chunk))
    out.append(_apc(f"a=p,U=1,i={image_id},c={cols},r={rows},q=2"))
    return "".join(out)


def delete_sequence(image_id: int) -> str:
    """Free image ``image_id`` (and its placements) in the terminal."""
    return _apc(f"a=d,d=I,i={image_id},q=2")


def placeholder_line(image_id: int, row: int, cols: int) -> Segment:
    """Cell row ``row`` of the placement: ``cols`` placeholder cells in the id's colour."""
    if max(row, cols - 1) >= len(DIACRITICS):
        raise ValueError(f"a placement of at most {len(DIACRITICS)} rows and columns")
    r = DIACRITICS[row]
    text = "".join(PLACEHOLDER + r + DIACRITICS[c] for c in range(cols))
    colour = Color.from_rgb((image_id >> 16) & 255, (image_id >> 8) & 255, image_id & 255)
    return Segment(text, Style(color=colour))


def send(sequence: str) -> None:
    """Write a graphics command to the terminal now (before Textual's next frame)."""
    out = sys.__stdout__
    if out is not None and sequence and out.isatty():
        out.write(sequence)
        out.flush()

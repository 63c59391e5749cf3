"""Run ``twodclass browse`` in a real Sixel terminal and save screenshots and timings.

``python benchmarks/tui_sixel_check.py JOBDIR --out DIR [--python PY] [--geometry 140x45]``

Needs the Debian packages ``xvfb xterm xdotool imagemagick fonts-dejavu-core`` and a Python
with the ``graphics`` extra (textual-image; ``--python .venv-gfx/bin/python``). Starts Xvfb,
an ``xterm -ti vt340`` (Sixel, 1024 colour registers) running the browser with
``TERM=xterm-256color COLORTERM=truecolor``, and reads the screen through Xlib (ctypes) to
time, from the outside, what the user sees:

- first paint: from starting xterm until the class grid has stopped changing (the time of
  its last change; the browser is then complete, images included);
- key latency: from sending a key (xdotool) until the screen has stopped changing (last
  change), for cursor moves (label repaint), page down (the grid scrolls: every visible
  tile is drawn again), and enter / escape (the class detail, and back).

Screenshots (ImageMagick ``import``): ``grid.png``, ``grid_big.png`` (after ``z``),
``detail.png``, ``plots.png``; ``timings.json`` holds the numbers. Look at the pictures.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]


class _XImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_char)),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
    ]


class Screen:
    """Hashes of a screen region, read with XGetImage (a few ms on Xvfb)."""

    def __init__(self, display: str) -> None:
        self.x11 = ctypes.cdll.LoadLibrary("libX11.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XDefaultRootWindow.restype = ctypes.c_ulong
        self.x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        self.x11.XGetImage.restype = ctypes.POINTER(_XImage)
        self.x11.XGetImage.argtypes = (
            [ctypes.c_void_p, ctypes.c_ulong]
            + [ctypes.c_int] * 2
            + [ctypes.c_uint] * 2
            + [ctypes.c_ulong, ctypes.c_int]
        )
        self.x11.XFree.argtypes = [ctypes.c_void_p]
        self.dpy = self.x11.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open display {display}")
        self.root = self.x11.XDefaultRootWindow(self.dpy)

    def digest(self, x: int, y: int, w: int, h: int) -> bytes:
        img = self.x11.XGetImage(self.dpy, self.root, x, y, w, h, 0xFFFFFFFF, 2)
        im = img.contents
        data = ctypes.string_at(im.data, im.bytes_per_line * im.height)
        self.x11.XFree(im.data)
        self.x11.XFree(img)
        return hashlib.blake2b(data, digest_size=16).digest()

    def colours(self, x: int, y: int, w: int, h: int) -> int:
        """Number of distinct pixel values in the region (1 for a blank area)."""
        img = self.x11.XGetImage(self.dpy, self.root, x, y, w, h, 0xFFFFFFFF, 2)
        im = img.contents
        data = ctypes.string_at(im.data, im.bytes_per_line * im.height)
        self.x11.XFree(im.data)
        self.x11.XFree(img)
        step = max(1, im.bits_per_pixel // 8)
        return len({data[i : i + step] for i in range(0, len(data), step * 7)})

    def settle(
        self,
        box: tuple[int, int, int, int],
        t0: float,
        quiet: float,
        timeout: float,
        before: bytes | None = None,
    ) -> tuple[float | None, bytes]:
        """Poll until ``box`` has not changed for ``quiet`` s; (time of the last change
        after ``t0`` or None if none, final digest). ``before``: the digest before ``t0``
        (a change that happened before the first poll counts)."""
        last = self.digest(*box) if before is None else before
        changed_at = None
        still_since = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            time.sleep(0.002)
            d = self.digest(*box)
            now = time.perf_counter()
            if d != last:
                last, changed_at, still_since = d, now, now
            elif now - still_since >= quiet and (changed_at is not None or now - t0 > quiet * 4):
                break
        return (None if changed_at is None else changed_at - t0), last


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for PNGs and timings.json")
    ap.add_argument("--python", default=sys.executable, help="Python with the graphics extra")
    ap.add_argument("--display", default=":77")
    ap.add_argument("--geometry", default="140x45", help="xterm columns x rows")
    ap.add_argument("--font-size", default="9")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--renderer", default="auto", help="twodclass browse --renderer")
    args = ap.parse_args(argv)
    for tool in ("Xvfb", "xterm", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is missing: apt-get install xvfb xterm xdotool imagemagick "
                "fonts-dejavu-core",
                file=sys.stderr,
            )
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DISPLAY=args.display)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                ["Xvfb", args.display, "-screen", "0", "1600x1000x24"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        time.sleep(1.0)
        screen = Screen(args.display)
        cols, rows = (int(v) for v in args.geometry.split("x"))
        inner = (
            f"export TERM=xterm-256color COLORTERM=truecolor; cd {Path.cwd()}; "
            f"exec {args.python} -m engine browse {args.job_dir.resolve()} "
            f"--renderer {args.renderer}"
        )
        xterm = [
            "xterm", "-ti", "vt340",
            "-xrm", "XTerm*decTerminalID: vt340",
            "-xrm", "XTerm*numColorRegisters: 1024",
            "-xrm", "XTerm*allowSendEvents: true",
            "-geometry", f"{args.geometry}+0+0",
            "-fa", "DejaVu Sans Mono", "-fs", args.font_size,
            "-e", "bash", "-c", inner,
        ]  # fmt: skip
        t0 = time.perf_counter()
        procs.append(subprocess.Popen(xterm, env=env))
        wid = ""
        while not wid and time.perf_counter() - t0 < 20:
            wid = _run(["xdotool", "search", "--class", "xterm"], env=env).stdout.split()[-1:]
            wid = wid[0] if wid else ""
            time.sleep(0.05)
        w_px = h_px = 0
        while w_px < 100 and time.perf_counter() - t0 < 30:  # until the window is mapped
            geo = _run(["xdotool", "getwindowgeometry", wid], env=env).stdout
            if "Geometry:" in geo:
                w_px, h_px = (int(v) for v in geo.split("Geometry:")[1].split()[0].split("x"))
            time.sleep(0.05)
        w_px, h_px = min(w_px, 1600), min(h_px, 1000)
        cell_w, cell_h = w_px // cols, h_px // rows
        grid_box = (0, 2 * cell_h, w_px, (rows - 6) * cell_h)
        # the grid holds images (many greys; "Loading classes…" leaves it blank), then
        # it stops changing: the time of its last change
        while screen.colours(*grid_box) < 32 and time.perf_counter() - t0 < 60:
            time.sleep(0.005)
        first, _ = screen.settle(grid_box, t0, quiet=1.5, timeout=60)
        time.sleep(3.0)  # the automatic suggestion and the particle filter finish
        timings: dict[str, object] = {
            "job": str(args.job_dir),
            "terminal": f"xterm -ti vt340, {args.geometry} cells of {cell_w}x{cell_h} px",
            "first_paint_s": first,
        }
        shot = lambda name: _run(["import", "-window", "root", str(args.out / name)], env=env)  # noqa: E731
        shot("grid.png")

        def key(name: str, box=grid_box, quiet: float = 0.3) -> float | None:
            before = screen.digest(*box)
            t = time.perf_counter()
            _run(["xdotool", "key", "--window", wid, name], env=env)
            lat, _ = screen.settle(box, t, quiet=quiet, timeout=10, before=before)
            return lat

        lat: dict[str, list[float]] = {"right": [], "left": [], "pagedown": [], "pageup": []}
        for _ in range(args.repeats):
            for name, k in (("right", "Right"), ("left", "Left")):
                v = key(k)
                if v is not None:
                    lat[name].append(v)
        for _ in range(max(2, args.repeats // 2)):
            for name, k in (("pagedown", "Next"), ("pageup", "Prior")):
                v = key(k, quiet=0.5)
                if v is not None:
                    lat[name].append(v)
        open_s = key("Return", quiet=1.0)
        time.sleep(1.5)  # member particles are read in a thread
        shot("detail.png")
        back_s = key("Escape", quiet=0.8)
        big_s = key("z", quiet=0.8)
        shot("grid_big.png")
        key("z", quiet=0.5)
        key("g", quiet=0.8)
        shot("plots.png")
        key("Escape", quiet=0.5)
        timings["key_latency_s"] = {
            k: {"median": statistics.median(v), "max": max(v), "n": len(v)}
            for k, v in lat.items()
            if v
        }
        timings["open_detail_s"] = open_s
        timings["back_to_grid_s"] = back_s
        timings["toggle_tile_size_s"] = big_s
        (args.out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
        print(json.dumps(timings, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

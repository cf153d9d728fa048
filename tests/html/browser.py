"""Headless Chromium for the HTML tests, a DOM reader and a tiny PNG decoder (no Pillow needed).

Only Debian's `chromium` (or a `chromium-browser`) is used, with networking, sync and updates
off; the tests skip when none is installed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import count
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)
#: A guard against a hung browser, not a timing assertion.
GUARD_S = 120
_profiles = count()


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(page: Path, fragment: str, tmp: Path, *extra: str) -> bytes:
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    profile = tmp / f"chromium-profile-{next(_profiles)}"
    cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri() + fragment]
    proc = subprocess.run(cmd, capture_output=True, timeout=GUARD_S, check=False, cwd=tmp)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc.stdout


def dump_dom(page: Path, fragment: str, tmp: Path) -> Dom:
    """The DOM after the page's scripts ran, opened at `fragment` (``#search=w``)."""
    out = _run(page, fragment, tmp, "--virtual-time-budget=5000", "--dump-dom")
    return Dom.parse(out.decode("utf-8"))


def screenshot(page: Path, fragment: str, tmp: Path, size: tuple[int, int] = (900, 600)) -> bytes:
    shot = tmp / f"shot-{next(_profiles)}.png"
    _run(
        page,
        fragment,
        tmp,
        "--virtual-time-budget=5000",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={shot}",
    )
    return shot.read_bytes()


# -- the DOM -----------------------------------------------------------------------------------
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: int | None
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    @property
    def content(self) -> str:
        return "".join(self.text)


class Dom(HTMLParser):
    """Every element of a page with its attributes and its whole text content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[int] = []

    @classmethod
    def parse(cls, text: str) -> Dom:
        dom = cls()
        dom.feed(text)
        dom.close()
        return dom

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self.open[-1] if self.open else None
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}, parent))
        if tag not in _VOID:
            self.open.append(len(self.elements) - 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self.open[-1] if self.open else None
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}, parent))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.elements[self.open[i]].tag == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        for i in self.open:
            self.elements[i].text.append(data)

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
        ]

    def one(self, tag: str | None = None, cls: str | None = None) -> Element:
        found = self.all(tag, cls)
        if len(found) != 1:
            raise LookupError(f"expected one <{tag} class={cls}>, found {len(found)}")
        return found[0]


# -- PNG ---------------------------------------------------------------------------------------
def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    n = len(line)
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            up_left = prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and the rows of an 8-bit RGB(A), non-interlaced PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or interlace or colour not in (2, 6):
        raise ValueError(f"unsupported PNG: depth {depth}, colour {colour}, interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, prev, bpp)
        prev = bytes(line)
        rows.append(prev)
    return width, height, bpp, rows


def ink(data: bytes, box: tuple[int, int, int, int] | None = None) -> tuple[float, int]:
    """In `box` (left, top, right, bottom; the whole image by default): the share of pixels
    that are not (near) white, and how many distinct colours there are."""
    width, height, bpp, rows = png_pixels(data)
    left, top, right, bottom = box or (0, 0, width, height)
    colours: set[bytes] = set()
    dark = 0
    for row in rows[top:bottom]:
        for x in range(left * bpp, right * bpp, bpp):
            px = row[x : x + 3]
            colours.add(px)
            if min(px) < 235:
                dark += 1
    return dark / max(1, (right - left) * (bottom - top)), len(colours)

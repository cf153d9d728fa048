"""Headless Chromium for the HTML tests, a DOM reader and a tiny PNG decoder (no Pillow needed).

Only Debian's `chromium` (or a `chromium-browser`) is used, with networking, sync and updates
off; the tests skip when none is installed. The browser is driven over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: no port, stdlib only), so a test waits until the page says it
is ready (``data-gv-ready`` or ``data-gv-error`` on its ``.gradviz`` element: the in-page
WebAssembly layout is done) instead of guessing a time budget.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

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
#: A guard against a hung browser or page, not a timing assertion.
GUARD_S = 120
_READY = (
    "(function(){var r=document.querySelector('.gradviz');"
    "return !!r && !!(r.getAttribute('data-gv-ready') || r.getAttribute('data-gv-error'))})()"
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium, spoken to over ``--remote-debugging-pipe`` (its fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        exe = chromium()
        if exe is None:
            raise RuntimeError("chromium is not installed")
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def fds() -> None:
            # Move both ends above 4 first: either may itself be fd 3 or 4.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._next = 0
        self._buffer = b""

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        found: dict[str, Any] = json.loads(raw)
        return found

    def evaluate(self, session: str, expression: str) -> Any:
        got = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return got.get("result", {}).get("value")

    def open(self, url: str, size: tuple[int, int]) -> tuple[str, str]:
        """A new tab at `url`, `size` CSS pixels, once its page is ready: (target, session)."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", session, url=url)
        start = time.monotonic()
        while not self.evaluate(session, _READY):
            if time.monotonic() - start > GUARD_S:
                raise RuntimeError(f"{url} was not ready after {GUARD_S} s")
            time.sleep(0.02)
        return target, session

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


_browser: list[Browser] = []


def browser() -> Browser:
    """The one browser of this test process (started on first use, stopped at exit)."""
    if not _browser:
        profile = Path(tempfile.mkdtemp(prefix="gv-chromium-"))
        _browser.append(Browser(profile))

        def stop() -> None:
            _browser[0].close()
            shutil.rmtree(profile, ignore_errors=True)

        atexit.register(stop)
    return _browser[0]


def _visit(page: Path, fragment: str, size: tuple[int, int], grab: str) -> Any:
    b = browser()
    target, session = b.open(page.as_uri() + fragment, size)
    try:
        if grab == "dom":
            return b.evaluate(session, "document.documentElement.outerHTML")
        shot = b.call("Page.captureScreenshot", session, format="png")
        return base64.b64decode(shot["data"])
    finally:
        b.call("Target.closeTarget", targetId=target)


def interact(page: Path, fragment: str, actions: list[tuple[str, str]]) -> Dom:
    """Open the page, then per (action, until) run the JavaScript `action` (a click, a key) and
    wait until the JavaScript condition `until` holds (the page laid out again); the DOM after."""
    b = browser()
    target, session = b.open(page.as_uri() + fragment, (1200, 800))
    try:
        for action, until in actions:
            b.evaluate(session, f"(function(){{{action}}})()")
            start = time.monotonic()
            while not b.evaluate(session, f"!!(function(){{return {until}}})()"):
                if time.monotonic() - start > GUARD_S:
                    raise RuntimeError(f"after {action!r}, {until!r} did not hold in {GUARD_S} s")
                time.sleep(0.02)
        return Dom.parse(str(b.evaluate(session, "document.documentElement.outerHTML")))
    finally:
        b.call("Target.closeTarget", targetId=target)


def dump_dom(page: Path, fragment: str, tmp: Path) -> Dom:
    """The DOM once the page is ready, opened at `fragment` (``#search=w``)."""
    return Dom.parse(str(_visit(page, fragment, (1200, 800), "dom")))


def screenshot(page: Path, fragment: str, tmp: Path, size: tuple[int, int] = (900, 600)) -> bytes:
    """A PNG of the page once it is ready, `size` pixels."""
    data: bytes = _visit(page, fragment, size, "png")
    (tmp / "shot.png").write_bytes(data)
    return data


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

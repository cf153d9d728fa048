"""The live-reload server of `render -o page.html --watch`: one HTML file on 127.0.0.1.

The page asks the server which version it shows (`render.live`) and reloads when a newer one is
written. A server is needed because a page opened from disk may not read files (browsers block
`fetch` of `file://`) and has no other way to learn that its file changed. Its own module so that
only `--watch` with an HTML output imports `http.server`.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: The live-reload server's port when free (else any free port); the URL is printed.
PORT = 8765


class LiveServer:
    """Serves one HTML file on 127.0.0.1 with live reload, in a daemon thread."""

    def __init__(self, page: Path, port: int = PORT) -> None:
        self.page = page
        self.version = 0
        self.error: str | None = None
        self._httpd = _bind(self, port)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/{page.name}"
        threading.Thread(target=self._httpd.serve_forever, name="gradviz-live", daemon=True).start()

    def update(self, error: str | None) -> None:
        """A run ended: the page reloads (`error` None) or shows `error` over the last graph."""
        self.version += 1
        self.error = error

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _bind(live: LiveServer, port: int) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"live": live})
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:  # the port is taken (another watch): any free one
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


class _Handler(BaseHTTPRequestHandler):
    live: LiveServer

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        from ..render.live import STATE_PATH, live_page, state_json

        path = self.path.split("?", 1)[0]
        if path == STATE_PATH:
            return self._send(state_json(self.live.version, self.live.error), "application/json")
        if path not in ("/", "/" + self.live.page.name):
            return self._send(
                "Not found: gradviz serves only the page it draws.", "text/plain", 404
            )
        try:
            page = self.live.page.read_text(encoding="utf-8")
        except OSError:
            page = "<!DOCTYPE html><html><body><p>Not drawn yet.</p></body></html>"
        self._send(live_page(page, self.live.version, self.live.error), "text/html")

    def _send(self, text: str, kind: str, status: int = 200) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the terminal is the script's and gradviz's."""

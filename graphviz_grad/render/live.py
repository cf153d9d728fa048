"""Live reload for `gradviz render FILE -o page.html --watch`: the page as the server sends it.

The file on disk stays exactly what `render` writes. The copy served on 127.0.0.1 gets a small
script that asks the server every half second which version of the output it has
(``/__gradviz/state``, JSON ``{"version": N, "error": "..." | null}``): a newer version reloads
the page; a failed re-run shows its error in a red bar over the last good graph, which stays
visible; while the server does not answer the bar says so and the page asks again, slower.
The page's Content-Security-Policy, which forbids every fetch, is widened by exactly one rule in
the served copy: ``connect-src 'self'``, so that the script may ask its own server.
"""

from __future__ import annotations

import json
import re

#: Where the page asks for the state of the watch.
STATE_PATH = "/__gradviz/state"
#: How often the page asks, in milliseconds.
POLL_MS = 500

_CSP = re.compile(r'(<meta http-equiv="Content-Security-Policy" content=")', re.I)
_BODY_END = re.compile(r"</body>", re.I)
#: JSON inside <script> must not close the element or open a comment.
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}

_SCRIPT = """<script>
(function () {
  var loaded = %(version)s, bar = null;
  function show(text) {
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "gradviz-live-error";
      bar.style.cssText = "position:fixed;left:0;right:0;top:0;z-index:99999;padding:8px 12px;" +
        "background:#b00020;color:#fff;font:13px/1.4 monospace;white-space:pre-wrap";
      document.body.appendChild(bar);
    }
    bar.textContent = text;
  }
  function hide() {
    if (bar) { bar.remove(); bar = null; }
  }
  function poll() {
    fetch("%(path)s", {cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (state) {
        if (state.version !== loaded) {
          if (!state.error) { location.reload(); return; }
          loaded = state.version;
          show(state.error);
        } else if (!state.error) {
          hide();
        }
        setTimeout(poll, %(poll)s);
      })
      .catch(function () {
        show("gradviz --watch is not answering (stopped?): this page updates when it is back.");
        setTimeout(poll, %(poll)s * 4);
      });
  }
  if (%(error)s) { show(%(error)s); }
  setTimeout(poll, %(poll)s);
})();
</script>
"""


def live_script(version: int, error: str | None = None) -> str:
    """The polling script for a page that shows output version `version` (and `error`, the
    failure of the latest re-run, if any)."""
    text = json.dumps(error).translate(_SCRIPT_ESCAPES)
    return _SCRIPT % {"version": int(version), "path": STATE_PATH, "poll": POLL_MS, "error": text}


def live_page(page: str, version: int, error: str | None = None) -> str:
    """`page` (a gradviz HTML page) with the polling script, allowed to ask its own server."""
    page = _CSP.sub(lambda m: m.group(1) + "connect-src 'self'; ", page, count=1)
    script = live_script(version, error)
    found = list(_BODY_END.finditer(page))
    if not found:
        return page + script
    at = found[-1].start()
    return page[:at] + script + page[at:]


def state_json(version: int, error: str | None) -> str:
    """What ``/__gradviz/state`` answers."""
    return json.dumps({"version": version, "error": error})

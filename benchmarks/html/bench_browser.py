"""How fast the HTML explorer opens in headless Chromium, measured inside the browser.

    python benchmarks/html/bench_browser.py                      # lesson, gpt, lstmcell, chain_100k
    python benchmarks/html/bench_browser.py --only gpt --repeat 3
    python benchmarks/html/bench_browser.py --page out.html '#expand=all'

Per workload it writes the page once with `gradviz render W -o W.html` (capture time is not
part of the figure), then opens it in a fresh headless Chromium per repeat, driven over the
DevTools protocol on a pipe (no network port, stdlib only), and reads what the page recorded:
`data-gv-ready-ms` (milliseconds from navigation start until the first drawing is in the DOM
and the page took its fragment into account: HTML parse, JSON parse, WebAssembly compile,
Graphviz layout), `data-gv-layout-ms` (the last layout alone) and `data-gv-drawn` (how many
nodes that drawing has). Best of `--repeat`. Nothing asserts on time; the table is the result.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The headless Chromium over the DevTools pipe is the test suite's (tests/helpers/browser.py).
sys.path.insert(0, str(ROOT / "tests"))
from helpers.browser import Browser  # noqa: E402

WORKLOADS = ROOT / "benchmarks" / "workloads"
#: (workload, fragment) pairs measured by default.
CASES = [
    ("lesson", ""),
    ("lesson", "#step=3"),
    ("gpt", ""),
    ("gpt", "#search=c_proj"),
    ("gpt", "#expand=all"),
    ("lstmcell", ""),
    ("chain_100k", ""),
    ("chain_100k", "#node=50000"),
]
GUARD_S = 300.0


def measure(page: Path, fragment: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        browser = Browser(Path(tmp))
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            browser.call("Page.navigate", session, url=page.as_uri() + fragment)
            probe = (
                "(function(){var r=document.querySelector('.gradviz');"
                "return r?[r.getAttribute('data-gv-ready'),r.getAttribute('data-gv-ready-ms'),"
                "r.getAttribute('data-gv-layout-ms'),r.getAttribute('data-gv-drawn'),"
                "r.getAttribute('data-gv-error')]:null})()"
            )
            start = time.monotonic()
            while time.monotonic() - start < GUARD_S:
                got = browser.call(
                    "Runtime.evaluate", session, expression=probe, returnByValue=True
                )
                value = got.get("result", {}).get("value")
                if value and (value[0] == "1" or value[4]):
                    ready, layout, drawn, error = value[1:]
                    return {
                        "ready_ms": int(ready or -1),
                        "layout_ms": int(layout or -1),
                        "drawn": int(drawn or -1),
                        "error": error,
                    }
                time.sleep(0.02)
            return {"ready_ms": -1, "layout_ms": -1, "drawn": -1, "error": "timed out"}
        finally:
            browser.close()


def write_page(name: str, folder: Path) -> Path:
    out = folder / f"{name}.html"
    if not out.exists():
        cmd = [
            sys.executable,
            "-m",
            "graphviz_grad",
            "render",
            str(WORKLOADS / f"{name}.py"),
            "-o",
            str(out),
            "--quiet",
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="workloads to measure")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pages", type=Path, default=Path(tempfile.gettempdir()) / "gv-pages")
    parser.add_argument("--page", nargs=2, metavar=("HTML", "FRAGMENT"), help="one page as is")
    opts = parser.parse_args()
    opts.pages.mkdir(parents=True, exist_ok=True)
    if opts.page:
        cases = [(Path(opts.page[0]), opts.page[1])]
    else:
        wanted = [c for c in CASES if not opts.only or c[0] in opts.only]
        cases = [(write_page(name, opts.pages), frag) for name, frag in wanted]
    head = ("page", "fragment", "bytes", "drawn", "ready ms", "layout ms")
    print("{:<28} {:<18} {:>10} {:>6} {:>9} {:>10}".format(*head))
    for page, fragment in cases:
        runs = [measure(page, fragment) for _ in range(opts.repeat)]
        ok = [r for r in runs if not r["error"]] or runs
        best = min(ok, key=lambda r: r["ready_ms"])
        note = f"  error: {best['error']}" if best["error"] else ""
        print(
            f"{page.name:<28} {fragment or '-':<18} {page.stat().st_size:>10,} {best['drawn']:>6}"
            f" {best['ready_ms']:>9} {best['layout_ms']:>10}{note}",
            flush=True,
        )


if __name__ == "__main__":
    main()

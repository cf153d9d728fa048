"""`render --watch` / `tree --watch`: a real process, a real edit, a bounded wait for the redraw.

The gradients in the redrawn page are checked against `torch.autograd.grad` on the edited code.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app
from graphviz_grad.cli._watch import stamps, user_modules, wait_for_change
from graphviz_grad.render.live import STATE_PATH, live_page

ROOT = Path(__file__).resolve().parents[1]
#: Starting Python and importing torch on a busy machine can be slow; every wait is bounded.
START_S = 180.0
REDRAW_S = 90.0

MODEL = """\
import torch
from helper import SCALE

w = torch.tensor(1.0, requires_grad=True)
loss = (SCALE * w - 4.0) ** 2
loss.backward()
"""


def torch_grad(scale: float) -> float:
    import torch

    w = torch.tensor(1.0, requires_grad=True)
    (g,) = torch.autograd.grad((scale * w - 4.0) ** 2, w)
    return g.item()


class Proc:
    """`python -m graphviz_grad ARGS` in `cwd`, its stdout and stderr read as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "NO_COLOR": "1"}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "graphviz_grad", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream: IO[str] | None, sink: list[str]) -> None:
        assert stream is not None
        for line in stream:
            sink.append(line)

    def wait_err(self, pattern: str, count: int = 1, timeout: float = REDRAW_S) -> re.Match[str]:
        """The `count`-th line of stderr matching `pattern`."""
        return wait(
            lambda: _nth([re.search(pattern, x) for x in list(self.err)], count),
            timeout,
            lambda: f"no {pattern!r} (x{count}) on stderr:\n{''.join(self.err)}",
        )

    def stop(self) -> int:
        self.p.send_signal(signal.SIGINT)
        return self.p.wait(timeout=60)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=30)


def _nth(matches: list[re.Match[str] | None], n: int) -> re.Match[str] | None:
    found = [m for m in matches if m is not None]
    return found[n - 1] if len(found) >= n else None


def wait(found: Callable[[], Any], timeout: float, why: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(why())


@pytest.fixture
def lesson(tmp_path: Path) -> Path:
    (tmp_path / "helper.py").write_text("SCALE = 2.0\n", encoding="utf-8")
    (tmp_path / "model.py").write_text(MODEL, encoding="utf-8")
    return tmp_path


@pytest.fixture
def start(lesson: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def run(*args: str) -> Proc:
        procs.append(Proc(list(args), lesson))
        return procs[-1]

    yield run
    for proc in procs:
        proc.kill()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode("utf-8"))


def state(url: str) -> dict[str, Any]:
    base = url.rsplit("/", 1)[0]
    return dict(json.loads(get(base + STATE_PATH)))


def page_columns(html: str) -> dict[str, list[str]]:
    """The page's node columns (`render.html_data.page_data`) with their texts looked up."""
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert data is not None
    page = json.loads(data.group(1))
    return {k: [page["strings"][i] for i in page[k]] for k in ("kind", "op", "grad")}


def w_grad(page: Path) -> float:
    """w's gradient as the HTML page shows it (a leaf's header is its name)."""
    cols = page_columns(page.read_text(encoding="utf-8"))
    (grad,) = [
        g for k, n, g in zip(cols["kind"], cols["op"], cols["grad"]) if (k, n) == ("leaf", "w")
    ]
    return float(grad)


@pytest.mark.slow
def test_render_watch_redraws_on_save_serves_live_page_and_survives_errors(
    lesson: Path, start: Callable[..., Proc]
) -> None:
    page = lesson / "model.html"
    proc = start("render", "model.py", "-o", "model.html", "--watch")
    url = proc.wait_err(r"live page: (http://127\.0\.0\.1:\d+/model\.html)", timeout=START_S)[1]
    assert w_grad(page) == torch_grad(2.0) == -8.0
    served = get(url)
    assert "connect-src 'self'" in served and STATE_PATH in served
    assert STATE_PATH not in page.read_text(encoding="utf-8")  # the file itself stays plain
    assert state(url) == {"version": 1, "error": None}

    # An imported module of the script's folder, same size: the re-run must see the new code.
    (lesson / "helper.py").write_text("SCALE = 3.0\n", encoding="utf-8")
    proc.wait_err(r"helper\.py changed")
    wait(lambda: state(url)["version"] == 2, REDRAW_S, lambda: "no second version")
    assert w_grad(page) == torch_grad(3.0) == -6.0

    # A script error is shown, the last good picture stays, and the watch goes on.
    (lesson / "model.py").write_text(MODEL + "raise ValueError('oops')\n", encoding="utf-8")
    proc.wait_err(r"error:.*ValueError: oops")
    wait(lambda: state(url)["version"] == 3, REDRAW_S, lambda: "no third version")
    assert "ValueError: oops" in state(url)["error"]
    assert w_grad(page) == -6.0 and proc.p.poll() is None

    (lesson / "model.py").write_text(MODEL.replace("4.0", "5.0"), encoding="utf-8")
    wait(lambda: state(url) == {"version": 4, "error": None}, REDRAW_S, lambda: "no fourth")
    assert w_grad(page) == pytest.approx(-12.0)  # 2 * (3 - 5) * 3

    assert proc.stop() == 0
    assert "stopped watching" in "".join(proc.err)
    assert "Traceback" not in "".join(proc.err).split("ValueError: oops")[-1]


@pytest.mark.slow
def test_tree_watch_prints_the_new_tree_after_a_save(
    lesson: Path, start: Callable[..., Proc]
) -> None:
    proc = start("tree", "model.py", "--watch")
    proc.wait_err("watching", timeout=START_S)
    assert "-8" in "".join(proc.out)
    (lesson / "model.py").write_text(MODEL.replace("4.0", "7.0"), encoding="utf-8")
    proc.wait_err("watching", count=2)
    wait(lambda: "-20" in "".join(proc.out), REDRAW_S, lambda: "".join(proc.out))  # 2*(2-7)*2
    # A run that fails before importing helper.py still watches it.
    (lesson / "model.py").write_text("w = (\n", encoding="utf-8")
    proc.wait_err("syntax error at line 1")
    (lesson / "helper.py").write_text("SCALE = 3.0\n", encoding="utf-8")
    proc.wait_err(r"helper\.py changed")
    assert proc.stop() == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["render", "--expr", "x*w", "--param", "w=1.0", "--watch"], "--expr"),
        (["render", "s.py", "--call", "all", "--watch"], "several calls"),
        (["render", "s.py", "-o", "-", "--watch"], "standard output"),
        (["tree", "--expr", "x*w", "--param", "w=1.0", "--watch"], "--expr"),
    ],
)
def test_watch_usage_errors_run_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.py").write_text("open('ran', 'w').close()\n", encoding="utf-8")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and says in result.stderr
    assert not Path("ran").exists()


def test_user_modules_are_the_folders_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.py").write_text("X = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = frozenset(sys.modules)
    import mine  # type: ignore[import-not-found]  # noqa: F401

    import graphviz_grad.render.live  # noqa: F401  (gradviz's own: never reloaded)

    try:
        assert user_modules(tmp_path, before) == {"mine": (tmp_path / "mine.py").resolve()}
        assert user_modules(ROOT, before) == {}
    finally:
        sys.modules.pop("mine", None)


def test_wait_for_change_names_the_saved_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("1\n")
    b.write_text("2\n")
    timer = threading.Timer(0.5, lambda: b.write_text("22\n"))
    timer.start()
    assert wait_for_change(stamps([a, b])) == [b]
    timer.join()
    before = stamps([a, b])
    a.write_text("11\n")  # saved while the script ran: seen at once, not lost
    assert wait_for_change(before) == [a]


def test_live_page_widens_the_csp_by_one_rule_and_keeps_the_body() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        "</head><body><p>graph</p></body></html>"
    )
    live = live_page(page, 3, error="</script><b>bad</b>")
    assert "content=\"connect-src 'self'; default-src 'none'\"" in live
    assert live.index("<p>graph</p>") < live.index("<script>") < live.index("</body>")
    assert "var loaded = 3" in live and "</script><b>" not in live


NODE_HARNESS = r"""
const states = JSON.parse(process.argv[1]), log = [];
let i = 0, bar = null;
global.document = {
  createElement: () => (bar = {style: {}, remove() { log.push("hide"); }}),
  body: {appendChild() {}},
};
global.location = {reload() { log.push("reload"); finish(); }};
const later = setTimeout;
global.setTimeout = (fn) => later(fn, 0);
global.fetch = () => {
  if (i >= states.length) finish();
  const s = states[i++];
  return s === "fail" ? Promise.reject(new Error("down"))
    : Promise.resolve({json: () => Promise.resolve(s)});
};
function finish() {
  if (bar && !log.includes("reload")) log.push("bar: " + bar.textContent);
  console.log(JSON.stringify(log)); process.exit(0);
}
const show = (t) => log.push("show: " + t);
"""


def run_page_script(version: int, states: list[Any], error: str | None = None) -> list[str]:
    """Run the live-reload script in node against a fake server answering `states` in turn."""
    import shutil

    from graphviz_grad.render.live import live_script

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    body = live_script(version, error).removeprefix("<script>").removesuffix("</script>\n")
    body = body.replace("bar.textContent = text;", "bar.textContent = text; log.push(text);")
    done = subprocess.run(
        [node, "-e", NODE_HARNESS + body, json.dumps(states)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_page_reloads_on_a_new_version_and_shows_errors_over_the_old_graph() -> None:
    same, boom, fixed = (
        {"version": 1, "error": None},
        {"version": 2, "error": "boom"},
        {"version": 3, "error": None},
    )
    assert run_page_script(1, [same, boom, boom, fixed]) == ["boom", "reload"]


def test_page_says_when_the_server_is_gone_and_recovers() -> None:
    log = run_page_script(1, ["fail", {"version": 1, "error": None}])
    assert log[0].startswith("gradviz --watch is not answering") and log[1] == "hide"


def test_page_loaded_during_a_failed_run_shows_that_error() -> None:
    assert run_page_script(4, [{"version": 4, "error": "bad"}], error="bad")[0] == "bad"

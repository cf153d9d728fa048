"""A finished recording holds no tensor of the script's: a deep graph it saw is freed where the
script drops it, not later wherever the recorder happens to be collected (a chain of ~100k nodes
freed on a default 8 MB C stack crashes the interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import gc, sys, threading
    import torch
    from graphviz_grad.capture.recorder import record

    kept = {}

    def work():  # the recording, in a thread with a big stack (as gradviz runs scripts)
        with record(keep=-1) as rec:
            x = torch.tensor(1.0, requires_grad=True)
            (x * 3.0).backward()
            z = x * 2.0
            for _ in range(150_000):  # a deep graph that is never backwarded, then dropped
                z = z + 0.5
            chain = [z]  # a list of the function's, which the checks of a run look at
            (x * 3.0).backward()
            del z
        kept["rec"] = rec

    threading.stack_size(1 << 30)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    del kept["rec"]  # on the main thread's default C stack
    gc.collect()
    print("freed")
    """
)


def test_a_finished_recording_keeps_no_graph_alive() -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "freed"


def test_where_each_leaf_was_reached_is_forgotten_with_the_leaf(tmp_path: Path) -> None:
    """A new input that requires grad at every step (adversarial training, a lesson's fresh
    `x`): the line each leaf's backward call was made at is kept per leaf id, and the ids of
    leaves that died go, not one entry per step for the whole run."""
    from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack

    script = tmp_path / "fresh_leaf.py"
    script.write_text(
        "import torch\n"
        "junk = []\n"
        "for step in range(5000):\n"
        "    x = torch.randn(3, requires_grad=True)\n"
        "    (x * 2).sum().backward()\n"
        "    del x\n"
        "    junk.append(torch.empty(0))  # takes the dead leaf's address: ids do not repeat\n",
        encoding="utf-8",
    )
    captured = in_big_stack(lambda: capture_script(script, [], CaptureOptions()))
    watch = captured.run.recorder.watch
    assert len(watch.reached_at) <= 2 * len(watch.reached) + 1024

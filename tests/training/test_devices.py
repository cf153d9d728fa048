"""Devices: the oracle suite on CUDA (skipped without a GPU), and a default device set by the
script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers.oracle import Oracle, mismatches

from graphviz_grad.capture import Recorder, load_source

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"
SCRIPTS = sorted(p.name for p in SAMPLES.glob("*.py") if p.name not in ("linear_nobackward.py",))


def _run_on(device: str, script: Path) -> tuple[Recorder, Oracle]:
    path, code = load_source(script)
    ns: dict = {"__name__": "__main__", "__file__": str(path)}
    argv, sys.argv = sys.argv, [str(path)]
    try:
        with torch.device(device), Recorder(namespaces=[ns]) as rec, Oracle() as oracle:
            exec(code, ns)
    finally:
        sys.argv = argv
    return rec, oracle


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_sample_matches_autograd_on_cuda(name: str, capsys: pytest.CaptureFixture) -> None:
    rec, oracle = _run_on("cuda", SAMPLES / name)
    assert rec.calls and len(oracle.expected) == len(rec.calls)
    for number, expected in enumerate(oracle.expected, start=1):
        assert mismatches(rec.graph(number), expected) == [], f"call {number}"


def test_default_device_set_by_the_script_is_left_after_the_run() -> None:
    code = compile(
        "import torch\n"
        "torch.set_default_device('cpu')\n"
        "w = torch.ones(2, requires_grad=True)\n"
        "(w * 3).sum().backward()\n",
        "<default-device>",
        "exec",
    )
    from graphviz_grad.capture import in_big_stack

    def job() -> tuple[int, float]:
        with Recorder() as rec:
            exec(code, {})
        leaf = rec.graph(-1).leaves[0]
        return int(torch._C._len_torch_function_stack()), float(leaf.grad.data[0])

    left, grad = in_big_stack(job)
    assert (left, grad) == (1, 3.0)  # the script's default device was still on in its thread
    assert torch._C._len_torch_function_stack() == 0

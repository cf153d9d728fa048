"""Tensor parallelism (`parallelize_module`: DTensor parameters and activations) under torchrun
(2 ranks, CPU, gloo).

A reduction on a DTensor gives this rank's numbers under the whole tensor's shape (a shard's sum
divided by the whole size), and reading it may start a collective: gradviz showed wrong means and
"unreadable" values. A DTensor is now summarised by its local part, with a note that says so and
how it is placed; these tests check each parameter's local value and gradient against torch's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_run import SCRIPTS, torchrun_gradviz

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is needed",
)

SCRIPT = str(SCRIPTS / "tp_train.py")


def _stats(data: list) -> tuple[float, float]:  # type: ignore[type-arg]
    t = torch.tensor(data, dtype=torch.float64)
    return t.mean().item(), t.norm().item()


def _check(summary: dict, data: list) -> None:  # type: ignore[type-arg]
    if "data" in summary:
        flat = torch.tensor(data, dtype=torch.float64).reshape(-1)
        assert torch.allclose(torch.tensor(summary["data"], dtype=torch.float64), flat)
    else:
        mean, norm = _stats(data)
        assert summary["mean"] == pytest.approx(mean, abs=1e-7)
        assert summary["norm"] == pytest.approx(norm, rel=1e-6)


@pytest.mark.slow
def test_dtensor_parameters_show_their_local_part_and_say_so(tmp_path: Path) -> None:
    out = tmp_path / "tp-{rank}.json"
    done = torchrun_gradviz(["render", SCRIPT, "-o", str(out)], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        graph = json.loads((tmp_path / f"tp-{rank}.json").read_text())
        ref = json.loads((tmp_path / f"ref-{rank}.json").read_text())
        leaves = {n["names"][0]: n for n in graph["nodes"] if n["kind"] == "leaf"}
        assert sorted(leaves) == sorted(f"model.{k}" for k in ref)
        for name, leaf in leaves.items():
            value, grad, placement = ref[name.removeprefix("model.")]
            for summary, data in ((leaf["value"], value), (leaf["grad"], grad)):
                assert summary["note"].startswith("this rank's part of DTensor float32["), name
                assert summary["note"].endswith(placement), name
                _check(summary, data)
        assert not any("unreadable" in json.dumps(n) for n in graph["nodes"])
        notes = [n.get("value", {}).get("note") or "" for n in graph["nodes"]]
        assert any(note.startswith("this rank's partial sums of DTensor") for note in notes)


@pytest.mark.slow
def test_the_doctor_finds_nothing_in_a_tensor_parallel_step(tmp_path: Path) -> None:
    done = torchrun_gradviz(["doctor", SCRIPT], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("gradviz doctor: no findings") == 1, done.stdout

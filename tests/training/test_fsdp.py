"""FSDP2 (`fully_shard`) under torchrun (2 ranks, CPU, gloo).

FSDP2 frees the memory of each gathered parameter (the graph's leaf) after the forward pass:
gradviz used to read it at the backward call and crash the run. Now the leaf is shown with a note
instead of a value, under the name of the module's parameter, with its local gradient (checked
against torch's own), and the doctor does not take the shards for unused parameters.
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

SCRIPT = str(SCRIPTS / "fsdp2_train.py")


@pytest.mark.slow
def test_fsdp2_leaves_are_named_with_local_grads_and_no_value(tmp_path: Path) -> None:
    from graphviz_grad.capture.summary import FREED_NOTE

    out = tmp_path / "fsdp-{rank}.json"
    done = torchrun_gradviz(["render", SCRIPT, "-o", str(out)], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        graph = json.loads((tmp_path / f"fsdp-{rank}.json").read_text())
        ref = json.loads((tmp_path / f"ref-{rank}.json").read_text())
        leaves = {n["names"][0]: n for n in graph["nodes"] if n["kind"] == "leaf"}
        assert sorted(leaves) == sorted(f"model.{k}" for k in ref)
        for name, leaf in leaves.items():
            assert leaf["value"]["note"] == FREED_NOTE, name
            expected = torch.tensor(ref[name.removeprefix("model.")], dtype=torch.float64)
            grad = leaf["grad"]
            if "data" in grad:
                assert torch.allclose(
                    torch.tensor(grad["data"], dtype=torch.float64), expected, atol=1e-7
                ), name
            else:
                assert grad["mean"] == pytest.approx(expected.mean().item(), abs=1e-7), name
                assert grad["norm"] == pytest.approx(expected.norm().item(), rel=1e-6), name


@pytest.mark.slow
def test_the_doctor_takes_no_shard_for_an_unused_or_frozen_parameter(tmp_path: Path) -> None:
    done = torchrun_gradviz(["doctor", SCRIPT], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("gradviz doctor: no findings") == 1, done.stdout

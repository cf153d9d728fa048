"""DDP under torchrun (2 ranks, CPU, gloo): every rank runs the script, one rank draws (or each
writes its own file), and leaves show the local gradient and DDP's all-reduced `.grad`, both
checked against torch's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_run import SCRIPTS, run, torchrun_gradviz

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is needed",
)

SCRIPT = str(SCRIPTS / "ddp_train.py")


def _close(a: object, b: object) -> bool:
    return bool(torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-5, atol=1e-7))


@pytest.mark.slow
def test_every_rank_writes_its_own_file_with_local_and_reduced_grads(tmp_path: Path) -> None:
    out = tmp_path / "ddp-{rank}.json"
    done = torchrun_gradviz(["render", SCRIPT, "-o", str(out)], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        graph = json.loads((tmp_path / f"ddp-{rank}.json").read_text())
        ref = json.loads((tmp_path / f"ref-{rank}.json").read_text())
        assert (graph["rank"], graph["world_size"]) == (rank, 2)
        assert any(f"rank {rank} of 2" in n for n in graph["notes"])
        leaves = {n["names"][0]: n for n in graph["nodes"] if n["kind"] == "leaf"}
        assert sorted(leaves) == sorted(f"model.{k}" for k in ref["local"])
        for name, leaf in leaves.items():
            key = name.removeprefix("model.")
            assert _close(leaf["grad"]["data"], ref["local"][key]), name
            assert _close(leaf["synced_grad"]["data"], ref["synced"][key]), name
    ranks = [json.loads((tmp_path / f"ref-{r}.json").read_text()) for r in (0, 1)]
    for key in ranks[0]["local"]:  # the all-reduced .grad is the mean of the local ones
        mean = (torch.tensor(ranks[0]["local"][key]) + torch.tensor(ranks[1]["local"][key])) / 2
        assert _close(ranks[0]["synced"][key], mean.tolist())
        assert not _close(ranks[0]["local"][key], ranks[1]["local"][key])


@pytest.mark.slow
def test_one_rank_draws_and_says_which(tmp_path: Path) -> None:
    done = torchrun_gradviz(["tree", SCRIPT, "--rank", "1"], REF_DIR=str(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("#0 MeanBackward0") == 1
    assert done.stderr.count("note: rank 1 of 2") == 1
    assert "rank 0 of 2" not in done.stderr
    assert ".grad(all-reduced)=" in done.stdout


def test_init_process_group_without_torchrun_names_torchrun(tmp_path: Path) -> None:
    from training_run import GRADVIZ

    env = {"RANK": "", "WORLD_SIZE": "", "MASTER_ADDR": "", "MASTER_PORT": ""}
    done = run([*GRADVIZ, "tree", SCRIPT], REF_DIR=str(tmp_path), **env)
    assert done.returncode == 4
    assert "hint: The script starts torch.distributed" in done.stderr
    assert "torchrun --nproc-per-node 2 --no-python gradviz render ddp_train.py" in done.stderr


def test_rank_without_torchrun_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from graphviz_grad.cli import app

    result = CliRunner().invoke(app, ["tree", SCRIPT, "--rank", "1"])
    assert result.exit_code == 2
    assert "only means something under torchrun" in result.output


@pytest.mark.slow
def test_doctor_on_rank_0_reports_a_nan_from_rank_1(tmp_path: Path) -> None:
    script = str(SCRIPTS / "ddp_nan_rank.py")
    done = torchrun_gradviz(["doctor", script], cwd=tmp_path, timeout=240)
    # torchrun exits 1 when a rank fails, and says which code that rank had.
    assert done.returncode == 1 and "exitcode  : 10" in done.stderr, done.stdout + done.stderr
    assert "On rank 1, the local gradient of" in done.stdout
    assert done.stdout.count("gradviz doctor:") == 1  # rank 1 prints nothing


def test_ranks_that_disagree_on_parameters_used() -> None:
    from graphviz_grad.diagnose.ranks import compare, report
    from graphviz_grad.model import Graph, Node, TensorSummary

    g = TensorSummary((1,), "float32", 1, [1.0], 1.0, 1.0, 1.0, 1.0)
    here = Graph(
        nodes=(
            Node(0, "leaf", None, names=("a",), grad=g),
            Node(1, "leaf", None, names=("b",), grad=g),
        ),
        edges=(),
    )
    there = Graph(nodes=(Node(0, "leaf", None, names=("a",), grad=g),), edges=())
    (finding,) = compare(here, 0, [report(there, 1)])
    assert finding.code == "unused-param" and finding.nodes == (1,)
    assert "`b` get a gradient on rank 0 but not on rank 1" in finding.message
    assert compare(here, 0, [report(here, 1)]) == []

"""The samples of docs/training.md run under gradviz and show what the document says."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples" / "training"

SHOWS = {
    "compiled.py": "CompiledFunctionBackward",
    "amp_scaler.py": "scaled by GradScaler (x1024)",
    "checkpointed.py": "[checkpointed]",
    "legendre.py": "LegendrePolynomial3Backward y_pred",
    "grad_reversal.py": "[hook]",
}


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_sample_shows_what_the_docs_say(name: str) -> None:
    result = CliRunner().invoke(app, ["tree", str(SAMPLES / name)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert SHOWS[name] in result.output
    assert "showing backward call" not in result.output  # one call each, no extra


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.py")) == sorted([*SHOWS, "ddp_train.py"])

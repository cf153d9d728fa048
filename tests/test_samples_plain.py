"""Every sample runs under plain `python`, without gradviz, and prints what it should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

#: Lines each sample must print; the values are the ones worked out by hand in its docstring.
EXPECTED: dict[str, list[str]] = {
    "linear.py": ["y_hat: 2.0", "r: -2.0", "loss: 4.0", "w.grad: -8.0"],
    "linear_nobackward.py": ["loss: 4.0", "w.grad: None"],
    "affine.py": ["y_hat: 3.0", "loss: 1.0", "w.grad: 2.0", "b.grad: 2.0"],
    "quadratic.py": ["Epoch: 0 |"],
    "training_loop.py": ["Epoch: 99 |", "Prediction (after training) 4 7.99"],
    "mlp.py": ["step 4: loss"],
    "transformer.py": ["loss:"],
    "lstm.py": ["loss:"],
}

#: Samples that take a few seconds (optimizers, nn modules) rather than one.
SLOW = {"mlp.py", "transformer.py", "lstm.py"}


def _param(name: str) -> object:
    marks = [pytest.mark.slow] if name in SLOW else []
    return pytest.param(name, marks=marks, id=name)


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", [_param(n) for n in sorted(EXPECTED)])
def test_sample_runs_under_plain_python(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in EXPECTED[name]:
        assert any(line.startswith(expected) for line in lines), (expected, result.stdout[-2000:])

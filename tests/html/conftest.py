"""Shared setup for the HTML, notebook and escaping tests: helper modules on the path."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "render"))


@pytest.fixture
def needs_dot() -> None:
    """Skip a test that lays a graph out when Graphviz's `dot` is not installed."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed")

"""Shared setup for the HTML, notebook and escaping tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def needs_dot() -> None:
    """Skip a test that lays a graph out when Graphviz's `dot` is not installed."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed")

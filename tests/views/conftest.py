"""Fixtures for the view tests: small recorded models and golden files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare `text` with golden/<name> exactly; rewrite it when GRADVIZ_UPDATE_GOLDEN=1."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("GRADVIZ_UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8", newline="\n")
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{name} changed; rerun with GRADVIZ_UPDATE_GOLDEN=1 if intended"

    return check

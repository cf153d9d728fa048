"""Fixtures every test folder shares: golden files (regenerate with GRADVIZ_UPDATE_GOLDEN=1).

Shared helpers live in the `helpers` package next to this file (pyproject puts tests/ on the
path): `helpers.oracle`, `helpers.graphs`, `helpers.browser`, `helpers.gradviz_proc`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.golden import check_golden

Golden = Callable[[str, str], None]


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """Compare `text` with `golden/<name>` next to the test file."""
    folder = Path(request.path).parent / "golden"
    return lambda name, text: check_golden(folder / name, text)

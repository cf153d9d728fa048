"""Golden files: compare text with a file, rewrite it with GRADVIZ_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path


def check_golden(path: Path, text: str) -> None:
    """`text` must equal the file at `path`; with GRADVIZ_UPDATE_GOLDEN=1 the file is rewritten."""
    if os.environ.get("GRADVIZ_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"golden file {path.name} missing: run with GRADVIZ_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path.name} changed; rerun with GRADVIZ_UPDATE_GOLDEN=1 if intended"

"""File names as the user reads them (torch-free, shared by capture and diagnostics)."""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1024)
def display_path(filename: str | None) -> str | None:
    """A file name as the user reads it: relative to the current folder when inside it."""
    if not filename:
        return None
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel

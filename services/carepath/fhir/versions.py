"""Ordering of definition versions, shared by the engine's resolver and the repository's canonical lookup."""

from __future__ import annotations

from typing import Any


def version_key(version: Any) -> tuple[tuple[int, int | str], ...]:
    """`1.10.0` sorts above `1.9.2` (numeric parts compare as numbers); an absent version sorts first."""
    parts = str(version or "").replace("-", ".").split(".")
    return tuple((1, int(p)) if p.isdigit() else (0, p) for p in parts if p)

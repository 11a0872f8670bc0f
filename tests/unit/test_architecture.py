"""The dependency direction of DESIGN.md, checked on the source: api/cli -> service -> engine, store -> fhir.

The engine, the Task workflow and the pathway content are pure (no database, HTTP or queue libraries); nothing
below the transports imports them; the store knows nothing of the use cases.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "carepath"
IO_LIBRARIES = ("sqlalchemy", "asyncpg", "aiosqlite", "httpx", "redis", "fakeredis", "fastapi", "starlette", "uvicorn")

# layer -> what it must not import
FORBIDDEN = {
    "engine": ("carepath.store", "carepath.service", "carepath.api", "carepath.content", *IO_LIBRARIES),
    "fhir": ("carepath.store", "carepath.service", "carepath.api", "carepath.engine", "carepath.content",
             *IO_LIBRARIES),
    "content": ("carepath.store", "carepath.service", "carepath.api", *IO_LIBRARIES),
    "workflow": ("carepath.store", "carepath.service", "carepath.api", "carepath.engine", "carepath.content",
                 "carepath.events", *IO_LIBRARIES),
    "store": ("carepath.service", "carepath.api", "carepath.engine", "carepath.content", "carepath.workflow"),
    "service": ("carepath.api", "carepath.events", "fastapi", "starlette", "redis", "fakeredis"),
    # the event transport calls the use cases; it renders no HTTP and never reaches past them into the engine
    "events": ("carepath.api", "carepath.engine", "fastapi", "starlette"),
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_inwards(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules found for {layer}"
    offending = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    ]
    assert offending == []

"""The dependency direction of DESIGN.md, checked on the source: api/cli/web -> auth -> service -> engine, store ->
fhir.

The engine, the Task workflow and the pathway content are pure (no database, HTTP or queue libraries); nothing
below the transports imports them; the store knows nothing of the use cases. The worklist (`web/`) is a transport
like `api/`: it reads and writes through the service layer, never the database directly, and its view models
(`web/views/`) are pure.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "carepath"
IO_LIBRARIES = ("sqlalchemy", "asyncpg", "aiosqlite", "httpx", "redis", "fakeredis", "fastapi", "starlette", "uvicorn")

# layer -> what it must not import
FORBIDDEN = {
    "engine": ("carepath.store", "carepath.service", "carepath.api", "carepath.content", "carepath.auth",
               "carepath.web", *IO_LIBRARIES),
    "fhir": ("carepath.store", "carepath.service", "carepath.api", "carepath.engine", "carepath.content",
             "carepath.auth", "carepath.web", *IO_LIBRARIES),
    "content": ("carepath.store", "carepath.service", "carepath.api", "carepath.auth", "carepath.web",
                *IO_LIBRARIES),
    "workflow": ("carepath.store", "carepath.service", "carepath.api", "carepath.engine", "carepath.content",
                 "carepath.events", "carepath.auth", "carepath.web", *IO_LIBRARIES),
    "store": ("carepath.service", "carepath.api", "carepath.engine", "carepath.content", "carepath.workflow",
              "carepath.auth", "carepath.web"),
    "service": ("carepath.api", "carepath.auth", "carepath.delivery", "carepath.events", "carepath.web", "fastapi",
                "starlette", "redis", "fakeredis"),
    # the event transport calls the use cases; it renders no HTTP and never reaches past them into the engine
    "events": ("carepath.api", "carepath.engine", "carepath.web", "fastapi", "starlette"),
    "delivery": ("carepath.api", "carepath.engine", "carepath.web", "fastapi", "starlette"),
    # Tokens, scopes and audit are transport-free: the api layer's middleware is the only HTTP side of auth.
    "auth": ("carepath.api", "carepath.web", "fastapi", "starlette", "uvicorn"),
    "web": ("sqlalchemy", "asyncpg", "aiosqlite", "redis", "fakeredis"),
    "web/views": ("carepath.store", "carepath.service", "carepath.api", "carepath.events", "jinja2", "itsdangerous",
                  *IO_LIBRARIES),
}  # fmt: skip
# Pure modules (no I/O: decisions and values only), tested without any server.
PURE_MODULES = ("delivery/backoff.py", "delivery/notify.py", "delivery/bundle.py", "service/subscription_rules.py")
PURE_FORBIDDEN = ("carepath.store", "carepath.api", "carepath.events", "carepath.delivery.http", *IO_LIBRARIES)


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


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_no_io(module: str) -> None:
    path = PACKAGE / module
    offending = [name for name in sorted(_imports(path))
                 if any(name == banned or name.startswith(banned + ".") for banned in PURE_FORBIDDEN)]  # fmt: skip
    assert offending == []

"""Search-parameter definitions: the R4 SearchParameter resources in `search-parameters.json`, loaded once.

The master copy ships inside the package (next to this module) so an installed carepath finds it without a
checkout; `contracts/search-parameters.json` at the repository root is the published copy for integrators, and a
test keeps the two identical. Multi-resource definitions (e.g. `clinical-patient`, whose expression is a union
over many types) are narrowed per type here, so extraction evaluates only the branch for the resource at hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

BUNDLE_FILE = "search-parameters.json"

# Answered from columns of the resource table, not from index rows (see store/search_sql.py).
RESOURCE_COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # token | string | date | reference | quantity | uri | number
    url: str
    expression: str  # narrowed to one resource type; "" when answered from resource columns
    target: tuple[str, ...] = ()
    modifiers: frozenset[str] = frozenset()
    comparators: frozenset[str] = frozenset()


@cache
def bundle() -> dict[str, Any]:
    """The SearchParameter Bundle as shipped (used by the CapabilityStatement and the contracts test)."""
    text = resources.files(__package__).joinpath(BUNDLE_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def definitions() -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle()["entry"]]


@cache
def params_for(resource_type: str) -> Mapping[str, SearchParam]:
    """code -> SearchParam for one resource type, including the common `Resource` parameters."""
    out: dict[str, SearchParam] = {}
    for sp in definitions():
        if resource_type in sp["base"] or "Resource" in sp["base"]:
            out[sp["code"]] = _param(sp, resource_type)
    return MappingProxyType(out)


def _param(sp: dict[str, Any], resource_type: str) -> SearchParam:
    expression = "" if sp["code"] in RESOURCE_COLUMN_PARAMS else narrow_expression(sp["expression"], resource_type)
    return SearchParam(
        code=sp["code"],
        type=sp["type"],
        url=sp["url"],
        expression=expression,
        target=tuple(sp.get("target", ())),
        modifiers=frozenset(sp.get("modifier", ())),
        comparators=frozenset(sp.get("comparator", ())),
    )


_ROOT_RE = re.compile(r"\(?\s*([A-Za-z]+)\b")


def narrow_expression(expression: str, resource_type: str) -> str:
    """Keep the `|` branches rooted at `resource_type` (or `Resource`, rewritten to the type: fhirpathpy does
    not match `Resource.x` on a concrete resource)."""
    kept = []
    for branch in split_union(expression):
        root = _ROOT_RE.match(branch)
        name = root.group(1) if root else ""
        if name == resource_type:
            kept.append(branch)
        elif name in ("Resource", "DomainResource"):
            kept.append(branch.replace(name, resource_type, 1))
    return " | ".join(kept)


def split_union(expression: str) -> list[str]:
    """Split on top-level `|` (not inside parentheses or string literals)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch == "|":
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]

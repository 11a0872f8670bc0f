"""extract_index(resource) -> IndexRows: what a resource contributes to the search index.

Per resource type, every search parameter's expression is compiled once into branches (paths.py); a write then
walks the JSON and converts the values per parameter type (convert.py). `_id` and `_lastUpdated` are answered from
the resource table's own columns and contribute no rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from carepath.fhir.search.convert import CONVERTERS, Row
from carepath.fhir.search.definitions import params_for, split_union
from carepath.fhir.search.paths import Branch, compile_branch
from carepath.fhir.search.rows import DateRow, IndexRows, QuantityRow, ReferenceRow, StringRow, TokenRow, UriRow


@dataclass(frozen=True)
class _Plan:
    code: str
    branches: tuple[Branch, ...]
    convert: Callable[[str, Any, str | None], Iterator[Row]]


@cache
def _plans(resource_type: str) -> tuple[_Plan, ...]:
    return tuple(
        _Plan(p.code, tuple(compile_branch(b) for b in split_union(p.expression)), CONVERTERS[p.type])
        for p in params_for(resource_type).values()
        if p.expression and p.type in CONVERTERS
    )


_FIELD_OF: dict[type, str] = {
    TokenRow: "tokens", StringRow: "strings", DateRow: "dates", ReferenceRow: "references",
    QuantityRow: "quantities", UriRow: "uris",
}  # fmt: skip


def extract_index(resource: dict[str, Any]) -> IndexRows:
    """The index rows of one resource; duplicates (the same code twice) are written once."""
    found: list[Row] = []
    for plan in _plans(str(resource.get("resourceType", ""))):
        for branch in plan.branches:
            if branch.roots and not any(key in resource for key in branch.roots):
                continue
            for value, fhir_type in branch.run(resource):
                found.extend(plan.convert(plan.code, value, fhir_type))
    rows = IndexRows()
    for row in dict.fromkeys(found):
        getattr(rows, _FIELD_OF[type(row)]).append(row)
    return rows

"""Bundle pieces shared by search and history: entries that embed stored JSON as-is, and paging links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from carepath.errors import InvalidRequest
from carepath.fhir.search.query import MAX_INT_PARAM
from carepath.store.records import StoredResource, instant

PAGING_PARAMS = ("_count", "_offset")


def resource_fragment(stored: StoredResource) -> orjson.Fragment:
    """The stored JSON text spliced into the response without a parse/serialise round trip."""
    assert stored.content is not None
    return orjson.Fragment(stored.content)


def int_param(query: list[tuple[str, str]], name: str, default: int, maximum: int | None = None) -> int:
    values = [v for k, v in query if k == name]
    if not values:
        return default
    if not (values[-1].isascii() and values[-1].isdigit()) or int(values[-1]) > MAX_INT_PARAM:
        raise InvalidRequest(f"{name} must be a non-negative integer up to {MAX_INT_PARAM}, got {values[-1]!r}")
    value = int(values[-1])
    return min(value, maximum) if maximum is not None else value


def page_links(
    self_url: str, query: list[tuple[str, str]], *, offset: int, count: int, total: int | None, has_more: bool
) -> list[dict[str, str]]:
    """self/first/previous/next links that carry the query and move `_offset` (our stateless paging cursor)."""
    kept = [(k, v) for k, v in query if k not in PAGING_PARAMS]

    def link(relation: str, at: int) -> dict[str, str]:
        params = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{self_url}?{params}"}

    links = [link("self", offset), link("first", 0)]
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    if count > 0 and (has_more or (total is not None and offset + count < total)):  # _count=0 never moves on
        links.append(link("next", offset + count))
    if total is not None and total > 0 and count > 0:
        links.append(link("last", ((total - 1) // count) * count))
    return links


def history_entry(stored: StoredResource, base: str) -> dict[str, Any]:
    method = "DELETE" if stored.deleted else ("POST" if stored.version == 1 else "PUT")
    entry: dict[str, Any] = {"fullUrl": f"{base}/{stored.relative_url}"}
    if not stored.deleted:
        entry["resource"] = resource_fragment(stored)
    entry["request"] = {"method": method, "url": stored.res_type if method == "POST" else stored.relative_url}
    entry["response"] = {
        "status": "204 No Content" if stored.deleted else ("201 Created" if method == "POST" else "200 OK"),
        "etag": stored.etag,
        "lastModified": instant(stored.last_updated),
    }
    return entry

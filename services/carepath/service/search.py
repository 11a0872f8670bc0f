"""The search interaction (R4 §3.1.1): a searchset Bundle with matches, includes, paging links and totals.

Paging is stateless: the links carry the query with `_offset`, so any page can be fetched again. One row past
the page is read to know whether a next page exists; the total is counted only when asked for
(`_total=accurate`, `_summary=count`) because counting 100,000 Tasks on every worklist page costs more than
the page itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from carepath.errors import Issue, operation_outcome
from carepath.fhir.search.query import SearchQuery, parse_search
from carepath.service.paging import page_links, resource_fragment
from carepath.settings import Settings
from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction

_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


async def search_bundle(
    tx: StoreTransaction, res_type: str | None, pairs: list[tuple[str, str]], base: str, settings: Settings,
    *, strict: bool,
) -> dict[str, Any]:  # fmt: skip
    """`strict`: unknown parameters are a 400 (`Prefer: handling=strict`); else each is ignored, left out of the
    `self` link (how R4 tells a client what was applied) and reported in a warning `outcome` entry."""
    assert res_type is not None, "system-level search is routed elsewhere"
    query = parse_search(res_type, pairs, default_count=settings.default_page_size,
                         max_count=settings.max_page_size, strict=strict)  # fmt: skip
    dropped = {i.name for i in query.ignored}
    applied = [(k, v) for k, v in pairs if k not in dropped]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if query.summary == "count" or query.count == 0:  # R4 §3.1.1.5.4: _count=0 is treated as _summary=count
        bundle["total"] = await tx.count(query)
        query_string = f"?{urlencode(applied)}" if applied else ""
        bundle["link"] = [{"relation": "self", "url": f"{base}/{res_type}{query_string}"}]
        if query.ignored:
            bundle["entry"] = _ignored_entries(query)
        return bundle
    rows = await tx.search(replace(query, count=query.count + 1))
    has_more = len(rows) > query.count
    rows = rows[: query.count]
    total = await tx.count(query) if query.total == "accurate" else None
    if total is None and not has_more:
        total = query.offset + len(rows)  # the last page tells the total for free
    if total is not None:
        bundle["total"] = total
    bundle["link"] = page_links(f"{base}/{res_type}", applied, offset=query.offset, count=query.count,
                                total=total, has_more=has_more)  # fmt: skip
    entries = [_entry(stored, base, "match", query) for _, stored in rows]
    entries += await _included(tx, query, [rid for rid, _ in rows], {s.relative_url for _, s in rows}, base)
    bundle["entry"] = entries + _ignored_entries(query)
    return bundle


def _ignored_entries(query: SearchQuery) -> list[dict[str, Any]]:
    """One warning OperationOutcome per ignored parameter, naming it and why (search mode `outcome`)."""
    return [
        {"resource": operation_outcome([Issue(f"Ignored {i.name}: {i.reason}", "not-supported", "warning", (i.name,))]),
         "search": {"mode": "outcome"}}
        for i in query.ignored
    ]  # fmt: skip


async def _included(
    tx: StoreTransaction, query: SearchQuery, rids: list[int], seen: set[str], base: str
) -> list[dict[str, Any]]:
    out = []
    specs = [(spec, False) for spec in query.includes] + [(spec, True) for spec in query.revincludes]
    for spec, reverse in specs:
        for _, stored in await tx.related(spec, rids, reverse=reverse):
            if stored.relative_url not in seen:
                seen.add(stored.relative_url)
                out.append(_entry(stored, base, "include", None))
    return out


def _entry(stored: StoredResource, base: str, mode: str, query: SearchQuery | None) -> dict[str, Any]:
    resource: Any = resource_fragment(stored)
    if query is not None and query.elements:
        resource = _subset(stored, query.elements)
    return {"fullUrl": f"{base}/{stored.relative_url}", "resource": resource, "search": {"mode": mode}}


def _subset(stored: StoredResource, elements: tuple[str, ...]) -> dict[str, Any]:
    """`_elements`: the mandatory parts plus the asked-for top-level elements, tagged SUBSETTED (R4 §3.1.1.5.9)."""
    full = stored.json()
    keep = {"resourceType", "id", "meta", *elements}
    subset = {k: v for k, v in full.items() if k in keep}
    meta = dict(subset.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    subset["meta"] = meta
    return subset

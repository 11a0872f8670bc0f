"""The history interactions (R4 §3.1.0.9): instance, type and whole-system, newest first, paged."""

from __future__ import annotations

from typing import Any

from carepath.errors import InvalidRequest
from carepath.fhir.search.dates import parse_instant
from carepath.service.paging import history_entry, int_param, page_links
from carepath.settings import Settings
from carepath.store.repository import StoreTransaction

_ALLOWED = {"_count", "_offset", "_since", "_format", "_pretty"}


async def history_bundle(
    tx: StoreTransaction,
    res_type: str | None,
    res_id: str | None,
    query: list[tuple[str, str]],
    base: str,
    settings: Settings,
) -> dict[str, Any]:
    unknown = sorted({k for k, _ in query} - _ALLOWED)
    if unknown:
        raise InvalidRequest(f"Unsupported history parameter(s): {', '.join(unknown)}")
    if res_id is not None:
        assert res_type is not None
        await tx.read_any(res_type, res_id)  # 404 for an unknown resource; a deleted one still has history
    since_values = [v for k, v in query if k == "_since"]
    since = parse_instant(since_values[-1]) if since_values else None
    count = int_param(query, "_count", settings.default_page_size, settings.max_page_size)
    offset = int_param(query, "_offset", 0)
    rows, total = await tx.history(res_type, res_id, since=since, count=count, offset=offset)
    path = "/".join(p for p in (res_type, res_id, "_history") if p)
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": page_links(f"{base}/{path}", query, offset=offset, count=count, total=total, has_more=False),
        "entry": [history_entry(r, base) for r in rows],
    }

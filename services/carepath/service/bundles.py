"""Batch and transaction Bundles (R4 §3.1.0.11).

A transaction is atomic: all entries run in one database transaction, in the order the spec prescribes
(DELETE, POST, PUT/PATCH, GET), with `urn:uuid:` fullUrls turned into server ids and every reference to them
rewritten before anything is written. Any failing entry rolls the whole Bundle back and the error names it.
A batch runs each entry in its own transaction and reports each entry's own outcome.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any

from carepath.errors import CarepathError, InvalidRequest, Issue, PayloadTooLarge, operation_outcome
from carepath.fhir.patch import patch_from_resource
from carepath.service.interactions import CRUD_KINDS, Interaction, Outcome, execute_crud, interaction_from_url
from carepath.service.paging import resource_fragment
from carepath.service.search import search_bundle
from carepath.service.transactions import run_in_transaction
from carepath.settings import get_settings
from carepath.store.records import instant
from carepath.store.repository import Repository, StoreTransaction, new_id

log = logging.getLogger("carepath.service")
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


async def process_bundle(
    repository: Repository, bundle: dict[str, Any], base: str, *, max_entries: int, strict_search: bool = False
) -> dict[str, Any]:
    """`strict_search`: the searches among the entries refuse unknown parameters (`Prefer: handling=strict`)."""
    if bundle.get("resourceType") != "Bundle":
        raise InvalidRequest(
            "POST to the base URL takes a Bundle of type batch or transaction", expression=("resourceType",)
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidRequest(f"Bundle.type must be batch or transaction, got {kind!r}", expression=("Bundle.type",))
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidRequest("Bundle.entry must be an array", expression=("Bundle.entry",))
    if len(entries) > max_entries:  # one request must not hold a transaction (and its locks) for ever
        raise PayloadTooLarge(
            f"A Bundle may have at most {max_entries} entries; split it", expression=("Bundle.entry",)
        )
    if kind == "transaction":
        return await _transaction(repository, entries, base, strict_search)
    return await _batch(repository, entries, base, strict_search)


async def _transaction(repository: Repository, entries: list[Any], base: str, strict: bool) -> dict[str, Any]:
    results = await run_in_transaction(repository, lambda tx: run_transaction(tx, entries, base, strict_search=strict))
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": results}


async def run_transaction(
    tx: StoreTransaction, entries: list[Any], base: str, *, strict_search: bool = False
) -> list[dict[str, Any]]:
    """The entries of a transaction inside an open store transaction; their response entries, in entry order."""
    interactions = [_entry_interaction(i, e) for i, e in enumerate(entries)]
    ids = _assign_ids(entries, interactions)
    # Every resource this transaction changes in place, locked first and in one order: no deadlock with another.
    await tx.lock([(it.res_type, it.res_id) for it in interactions if it.kind in ("update", "patch", "delete")
                   and it.res_type is not None and it.res_id is not None])  # fmt: skip
    results: list[dict[str, Any]] = [{} for _ in entries]
    for index in sorted(range(len(entries)), key=lambda i: _run_order(entries[i], interactions[i])):
        # Rewritten only now: a conditional create's fullUrl is known once it has run (created or matched).
        it = _rewrite(entries[index], interactions[index], ids)
        try:
            outcome = await _run(tx, it, base, strict_search)
        except CarepathError as exc:
            exc.expression = exc.expression or (f"Bundle.entry[{index}]",)
            exc.diagnostics = f"Bundle.entry[{index}]: {exc.diagnostics}"
            raise
        full_url = entries[index].get("fullUrl")
        if it.if_none_exist is not None and isinstance(full_url, str) and outcome.stored is not None:
            ids[full_url] = outcome.stored.relative_url
        results[index] = _response_entry(outcome, base)
    return results


def _run_order(entry: Any, it: Interaction) -> tuple[int, int]:
    """DELETE, POST, PUT, GET (R4 §3.1.0.11.2); among the POSTs, conditional creates first, so the entries that
    refer to them by fullUrl get the id of the resource they matched or created."""
    return _ORDER[_method(entry)], 0 if it.if_none_exist is not None else 1


async def _batch(repository: Repository, entries: list[Any], base: str, strict: bool) -> dict[str, Any]:
    results = []
    for index, entry in enumerate(entries):
        try:
            it = _entry_interaction(index, entry)
            outcome = await run_in_transaction(repository, partial(_run, it=it, base=base, strict_search=strict))
        except CarepathError as exc:
            results.append(_error_entry(exc.status, exc.issues()))
            continue
        except Exception as exc:
            # A defect met by one entry: its own transaction rolled back, the entries before it stay stored, and
            # the others still run — answering 500 for the whole batch would misstate what was stored.
            log.exception("UNEXPECTED ERROR in Bundle.entry[%d] of a batch", index)
            issue = Issue(f"Internal error ({type(exc).__name__}); this entry was not applied", "exception")
            results.append(_error_entry(500, [issue]))
            continue
        results.append(_response_entry(outcome, base))
    return {"resourceType": "Bundle", "type": "batch-response", "entry": results}


async def run_batch_entries(
    tx: StoreTransaction, entries: list[Any], base: str, *, strict_search: bool = True
) -> list[dict[str, Any]]:
    """A batch inside one open transaction (an inbound event's, which also holds its idempotency key): each
    entry in its own savepoint, so a failing entry is rolled back alone and reported in its response entry."""
    results = []
    for index, entry in enumerate(entries):
        try:
            it = _entry_interaction(index, entry)
            async with tx.savepoint():
                results.append(_response_entry(await _run(tx, it, base, strict_search), base))
        except CarepathError as exc:
            results.append(_error_entry(exc.status, exc.issues()))
    return results


async def _run(tx: StoreTransaction, it: Interaction, base: str, strict_search: bool) -> Outcome:
    if it.kind == "search":
        bundle = await search_bundle(tx, it.res_type, it.query, base, get_settings(), strict=strict_search)
        return Outcome(200, body=bundle)
    if it.kind in CRUD_KINDS:
        return await execute_crud(tx, it)
    raise InvalidRequest(f"{it.kind} is not supported inside a Bundle")


def _error_entry(status: int, issues: list[Issue]) -> dict[str, Any]:
    return {"response": {"status": str(status), "outcome": operation_outcome(issues)}}


def _method(entry: Any) -> str:
    method = (entry.get("request") or {}).get("method") if isinstance(entry, dict) else None
    return method.upper() if isinstance(method, str) and method.upper() in _ORDER else "GET"


def _entry_interaction(index: int, entry: Any) -> Interaction:
    where = f"Bundle.entry[{index}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or not _text(request, "method", where) or not _text(request, "url", where):
        raise InvalidRequest(f"{where}.request with method and url is required", expression=(f"{where}.request",))
    if not isinstance(entry.get("fullUrl", ""), str):  # Bundle.entry.fullUrl is a uri: one string
        raise InvalidRequest(f"{where}.fullUrl must be a string", expression=(f"{where}.fullUrl",))
    method = request["method"].upper()
    if method not in _ORDER or method == "HEAD":
        raise InvalidRequest(f"{where}: method {method} is not supported", expression=(f"{where}.request.method",))
    body = entry.get("resource")
    if method in ("POST", "PUT") and not isinstance(body, dict):
        raise InvalidRequest(f"{where}: {method} needs a resource", expression=(f"{where}.resource",))
    if_match, if_none_exist = _text(request, "ifMatch", where), _text(request, "ifNoneExist", where)
    patch = patch_from_resource(body, f"{where}.resource") if method == "PATCH" else None
    try:
        return interaction_from_url(
            method,
            request["url"],
            body if method in ("POST", "PUT") else None,
            if_match=if_match,
            if_none_exist=if_none_exist,
            patch=patch,
        )
    except CarepathError as exc:
        exc.expression = (f"{where}.request.url",)
        exc.diagnostics = f"{where}: {exc.diagnostics}"
        raise


def _text(request: dict[str, Any], key: str, where: str) -> str | None:
    """A string of Bundle.entry.request (absent -> None); any other JSON type is the client's error."""
    value = request.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{where}.request.{key} must be a string", expression=(f"{where}.request.{key}",))
    return value


def _assign_ids(entries: list[Any], interactions: list[Interaction]) -> dict[str, str]:
    """fullUrl -> "Type/id" for every plain create, so references can point at them before they exist (a
    conditional create's fullUrl is added when it has run)."""
    ids: dict[str, str] = {}
    claimed: set[str] = set()
    for index, (entry, it) in enumerate(zip(entries, interactions, strict=True)):
        full_url = entry.get("fullUrl")
        if it.kind != "create" or not isinstance(full_url, str):
            continue
        if full_url in claimed:  # bdl-7; two creates would otherwise share one id
            where = f"Bundle.entry[{index}].fullUrl"
            raise InvalidRequest(f"{where} {full_url!r} is used by another entry", expression=(where,))
        claimed.add(full_url)
        if it.if_none_exist is None:
            ids[full_url] = f"{it.res_type}/{new_id()}"
    return ids


def _rewrite(entry: dict[str, Any], it: Interaction, ids: dict[str, str]) -> Interaction:
    """The interaction with references rewritten and, for a create, the id chosen in `_assign_ids`."""
    body = _replace_references(it.body, ids) if it.body is not None and ids else it.body
    res_id = it.res_id
    if it.kind == "create" and entry.get("fullUrl") in ids:
        res_id = ids[entry["fullUrl"]].split("/", 1)[1]
    return replace(it, body=body, res_id=res_id)


def _replace_references(value: Any, ids: dict[str, str]) -> Any:
    """`value` with its references to `ids` rewritten. Only the objects on the way to a rewritten reference are
    copied (the input is never changed: a unit of work may run again); the rest is shared, unchanged."""
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for k, v in value.items():
            new = ids.get(v, v) if k == "reference" and isinstance(v, str) else _replace_references(v, ids)
            if new is not v:
                changed = changed if changed is not None else dict(value)
                changed[k] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [_replace_references(v, ids) for v in value]
        return value if all(new is old for new, old in zip(items, value, strict=True)) else items
    return value


def _response_entry(outcome: Outcome, base: str) -> dict[str, Any]:
    status = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}.get(outcome.status, str(outcome.status))
    entry: dict[str, Any] = {"response": {"status": status}}
    stored = outcome.stored
    if stored is not None:
        entry["fullUrl"] = f"{base}/{stored.relative_url}"
        entry["response"].update(etag=stored.etag, lastModified=instant(stored.last_updated))
        if outcome.status == 201:
            entry["response"]["location"] = f"{stored.versioned_url}"
        if not stored.deleted:
            entry["resource"] = resource_fragment(stored)
    elif outcome.body is not None:
        entry["resource"] = outcome.body
    return entry

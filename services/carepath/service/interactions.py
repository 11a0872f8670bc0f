"""FHIR RESTful interactions (R4 §3.1.0) as transport-free values and one executor.

The HTTP routes and the entries of a batch/transaction Bundle both become an `Interaction` and run through
`execute`, so a create behaves the same whether it arrives alone or inside a Bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from carepath.errors import InvalidRequest, MethodNotAllowed, NotFound, PreconditionFailed
from carepath.fhir.models import is_supported, unsupported_reason
from carepath.fhir.patch import Patch, apply_patch
from carepath.fhir.search.query import parse_search
from carepath.service import subscriptions
from carepath.service.stop_rules import apply_stop_rules
from carepath.service.task_workflow import update_resource
from carepath.service.trigger_queue import queue_trigger_evaluation
from carepath.store.records import StoredResource
from carepath.store.repository import StoreTransaction

Kind = Literal[
    "read", "vread", "create", "update", "patch", "delete", "search", "history-instance", "history-type",
    "history-system", "operation",
]  # fmt: skip
CRUD_KINDS = ("read", "vread", "create", "update", "patch", "delete")

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_VERSION = 2**31 - 1  # resource.version is a 32-bit INTEGER column


@dataclass(frozen=True)
class Interaction:
    kind: Kind
    res_type: str | None = None
    res_id: str | None = None
    version: int | None = None
    operation: str | None = None  # "$apply" for kind == "operation"
    query: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, Any] | None = None
    if_match: int | None = None
    if_none_exist: str | None = None
    patch: Patch | None = None  # for kind == "patch"


@dataclass
class Outcome:
    """What an interaction produced; transports render it (HTTP response or Bundle entry response)."""

    status: int
    stored: StoredResource | None = None
    body: dict[str, Any] | None = None  # a Bundle, Parameters or OperationOutcome that is not a stored resource


def parse_if_match(value: str | None) -> int | None:
    """`W/"3"` (or `"3"`, `3`) -> 3."""
    if value is None:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?(\d+)"?\s*', value)
    if match is None:
        raise InvalidRequest(f'If-Match must be an ETag like W/"3", got {value!r}')
    return int(match.group(1))


def check_type(res_type: str) -> str:
    if not is_supported(res_type):
        raise NotFound(unsupported_reason(res_type))
    return res_type


def check_id(res_id: str) -> str:
    if not _ID.match(res_id):
        raise InvalidRequest(f"{res_id!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})")
    return res_id


def interaction_from_url(
    method: str, url: str, body: dict[str, Any] | None = None, *, if_match: str | None = None,
    if_none_exist: str | None = None, patch: Patch | None = None,
) -> Interaction:  # fmt: skip
    """Route a relative FHIR URL (as in Bundle.entry.request.url) to an interaction."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:  # Bundle.entry.request.url is relative to the base (R4 Bundle definition)
        raise InvalidRequest(f"{url!r} must be relative to the server's base URL, e.g. 'Patient/123'")
    segments = [s for s in parts.path.strip("/").split("/") if s]
    query = parse_qsl(parts.query, keep_blank_values=True)
    method = method.upper()
    common: dict[str, Any] = {"query": query, "body": body, "if_match": parse_if_match(if_match)}
    if segments == ["_history"] and method == "GET":
        return Interaction("history-system", **common)
    if not segments:
        raise InvalidRequest(f"Cannot route {method} {url!r}")
    res_type, rest = check_type(segments[0]), segments[1:]
    if rest and rest[-1].startswith("$"):
        res_id = check_id(rest[0]) if len(rest) == 2 else None
        return Interaction("operation", res_type, res_id, operation=rest[-1], **common)
    kind: Kind | None = _route(method, rest)
    if kind is None:
        raise MethodNotAllowed(f"{method} is not allowed on {url!r}")
    res_id = check_id(rest[0]) if rest and rest[0] not in ("_history", "_search") else None
    version = int(rest[2]) if kind == "vread" and rest[2].isascii() and rest[2].isdigit() else None
    if kind == "vread" and version is None:
        raise NotFound(f"Version {rest[2]!r} does not exist")
    return Interaction(kind, res_type, res_id, version, if_none_exist=if_none_exist, patch=patch, **common)


def _route(method: str, rest: list[str]) -> Kind | None:
    shape = tuple("*" if i in (0, 2) and s not in ("_history", "_search") else s for i, s in enumerate(rest))
    table: dict[tuple[str, tuple[str, ...]], Kind] = {
        ("GET", ()): "search",
        ("POST", ()): "create",
        ("PUT", ()): "update",  # conditional: PUT [type]?criteria
        ("PATCH", ()): "patch",
        ("DELETE", ()): "delete",
        ("POST", ("_search",)): "search",
        ("GET", ("_history",)): "history-type",
        ("GET", ("*",)): "read",
        ("PUT", ("*",)): "update",
        ("PATCH", ("*",)): "patch",
        ("DELETE", ("*",)): "delete",
        ("GET", ("*", "_history")): "history-instance",
        ("GET", ("*", "_history", "*")): "vread",
    }
    return table.get((method, shape))


async def execute_crud(tx: StoreTransaction, it: Interaction) -> Outcome:
    """read, vread, create, update, patch, delete, and the conditional update, patch and delete. Search, history
    and operations have their own modules."""
    assert it.res_type is not None
    if it.kind in ("update", "patch", "delete") and it.res_id is None:
        conditional = await _conditional(tx, it)
        if isinstance(conditional, Outcome):
            return conditional
        it = conditional
    if it.kind == "patch":
        # A PATCH is the update of the patched version it read: every rule of the update path applies to it.
        return await execute_crud(tx, await _patched(tx, it))
    return await _execute(tx, it)


async def _execute(tx: StoreTransaction, it: Interaction) -> Outcome:
    assert it.res_type is not None
    res_type = it.res_type
    if it.kind == "read":
        return Outcome(200, await tx.read(it.res_type, _need_id(it)))
    if it.kind == "vread":
        assert it.version is not None
        if it.version > MAX_VERSION:  # cannot exist, and would overflow the database's integer column
            raise NotFound(f"{it.res_type}/{it.res_id} has no version {it.version}")
        return Outcome(200, await tx.vread(it.res_type, _need_id(it), it.version))
    headers: list[str] | None = None
    if res_type == subscriptions.SUBSCRIPTION and it.kind in ("create", "update") and it.body is not None:
        # Checked and its header values masked before it is stored (write-only values, service/subscriptions.py)
        body, headers = await subscriptions.before_write(tx, it.res_id if it.kind == "update" else None, it.body)
        it = replace(it, body=body)
    if it.kind == "create":
        outcome = await _create(tx, it)
    elif it.kind == "update":
        # The workflow's door: a Task update is checked by the state machine and its consequences run here too.
        stored, created = await update_resource(tx, res_type, _need_id(it), _need_body(it), if_match=it.if_match)
        outcome = Outcome(201 if created else 200, stored)
    else:
        return await _delete(tx, it)
    if outcome.stored is not None and outcome.status in (200, 201) and not _matched_existing(it, outcome):
        if headers is not None:
            await subscriptions.after_write(tx, outcome.stored, headers)
        await apply_stop_rules(tx, outcome.stored)  # same transaction: the event and its consequences land together
        await queue_trigger_evaluation(tx, outcome.stored)  # pathway triggers, evaluated after commit (the outbox)
    return outcome


async def _patched(tx: StoreTransaction, it: Interaction) -> Interaction:
    """The update that a PATCH amounts to: the current version with the patch applied, guarded by that version."""
    assert it.res_type is not None and it.patch is not None
    current = await tx.read(it.res_type, _need_id(it))
    if it.if_match is not None and it.if_match != current.version:
        raise PreconditionFailed(f"If-Match {it.if_match} but {current.relative_url} is at version {current.version}")
    patched = apply_patch(current.json(), it.patch)
    if patched.get("resourceType") != it.res_type or patched.get("id") != it.res_id:
        raise InvalidRequest("A patch must not change the resourceType or id", expression=("resourceType", "id"))
    return replace(it, kind="update", body=patched, patch=None, if_match=current.version)


async def _conditional(tx: StoreTransaction, it: Interaction) -> Interaction | Outcome:
    """`PUT|PATCH|DELETE [type]?criteria` (R4 §3.1.0.4.3, 3.1.0.6.1): the interaction on the one match; several
    matches -> 412. No match: a PUT creates (with the body's id, if any), a DELETE has nothing to do, a PATCH 404s."""
    assert it.res_type is not None
    verb = {"update": "update", "patch": "patch", "delete": "delete"}[it.kind]
    query = parse_search(it.res_type, it.query)  # strict: an ignored criterion could select the wrong resource
    if not query.criteria:
        raise InvalidRequest(f"A conditional {verb} needs search criteria ([type]?parameter=value)")
    found = await tx.search(replace(query, count=2, offset=0, sort=(), includes=(), revincludes=()))
    if len(found) > 1:
        raise PreconditionFailed(f"Conditional {verb}: the criteria match more than one {it.res_type}")
    body_id = it.body.get("id") if it.body is not None else None
    if found:
        match_id = found[0][1].res_id
        if it.kind == "update" and body_id is not None and body_id != match_id:
            raise InvalidRequest(f"The body's id {body_id!r} is not the matching resource's id {match_id!r}",
                                 expression=("id",))  # fmt: skip
        body = {**it.body, "id": match_id} if it.body is not None else None  # "no id given": the match's
        return replace(it, res_id=match_id, body=body)
    if it.kind == "delete":
        return Outcome(204)
    if it.kind == "patch":
        raise NotFound(f"Conditional patch: no {it.res_type} matches the criteria")
    if isinstance(body_id, str):
        return replace(it, res_id=check_id(body_id))  # update as create, with the client's id
    return replace(it, kind="create")


def _matched_existing(it: Interaction, outcome: Outcome) -> bool:
    """A conditional create that found its match wrote nothing, so it is no new event."""
    return it.kind == "create" and outcome.status == 200


async def _delete(tx: StoreTransaction, it: Interaction) -> Outcome:
    assert it.res_type is not None
    if it.kind != "delete":
        raise MethodNotAllowed(f"{it.kind} is not a CRUD interaction")
    deleted = await tx.delete(it.res_type, _need_id(it))
    if deleted is not None and it.res_type == subscriptions.SUBSCRIPTION:
        await subscriptions.after_write(tx, deleted, [])
    return Outcome(204 if deleted is None else 200, deleted)


async def _create(tx: StoreTransaction, it: Interaction) -> Outcome:
    body = _need_body(it)
    if body.get("resourceType") != it.res_type:
        raise InvalidRequest(
            f"The body is a {body.get('resourceType')}, the URL says {it.res_type}", expression=("resourceType",)
        )
    if it.if_none_exist is not None:
        stored, created = await tx.conditional_create(body, it.if_none_exist)
        return Outcome(201 if created else 200, stored)
    # FHIR create ignores a client-supplied id (R4 §3.1.0.7.1): the server assigns one (inside a transaction
    # Bundle it was chosen up front, so references to the entry's fullUrl could be rewritten).
    return Outcome(201, await tx.create({k: v for k, v in body.items() if k != "id"}, res_id=it.res_id))


def _need_id(it: Interaction) -> str:
    if it.res_id is None:
        raise InvalidRequest("This interaction needs a resource id")
    return it.res_id


def _need_body(it: Interaction) -> dict[str, Any]:
    if it.body is None:
        raise InvalidRequest("This interaction needs a resource in the body")
    return it.body

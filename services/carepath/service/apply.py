"""`PlanDefinition/$apply` and `ActivityDefinition/$apply` (R4 §12.18.20 / §12.19.20) over the pure engine.

This module does the I/O the engine must not: it finds the definition, pre-loads every definition it refers to,
gathers the subject's record (`useServerData`), and with `persist=true` stores the whole result — CarePlan,
RequestGroup, requests, Tasks, Goals and a Provenance — in one transaction, keyed by the client's
`Idempotency-Key` so a retried call returns the first result instead of a second CarePlan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from carepath import jsonutil
from carepath.engine import (
    ApplyContext,
    ApplyResult,
    DictResolver,
    apply_activity_definition,
    apply_plan_definition,
    to_transaction_bundle,
)
from carepath.errors import InvalidRequest, Issue, NotFound, operation_outcome
from carepath.service.bundles import run_transaction
from carepath.service.parameters import OperationInput, reference_text
from carepath.store.repository import Repository, StoreTransaction

_MAX_DEPTH = 16  # nested PlanDefinitions deeper than this are a cycle or a mistake; the engine reports cycles


@dataclass(frozen=True)
class ApplyResponse:
    status: int
    body: dict[str, Any]
    results: tuple[ApplyResult, ...] = ()  # the engine's results; empty when an earlier response was replayed


async def apply_plan(
    repository: Repository, plan_id: str | None, inputs: OperationInput, *, idempotency_key: str | None,
    now: datetime | None = None,
) -> ApplyResponse:  # fmt: skip
    now = now or datetime.now(UTC)
    subjects = [reference_text(s, "subject") for s in inputs.all("subject")]
    if not subjects:
        raise InvalidRequest("$apply needs at least one 'subject' parameter", expression=("Parameters.parameter",))
    persist = inputs.boolean("persist", False)
    scope = f"PlanDefinition/{plan_id or ''}/$apply:{idempotency_key}" if persist and idempotency_key else None
    if scope is not None:
        async with repository.reader() as tx:
            earlier = await tx.idempotent_response(scope)
        if earlier is not None:
            return ApplyResponse(earlier[0], jsonutil.loads(earlier[1]))
    try:
        async with repository.transaction() as tx:
            plan = await _find_plan(tx, plan_id, inputs)
            resolver = DictResolver(await _definitions(tx, plan))
            results = [await _apply_one(tx, plan, resolver, subject, inputs, now, persist) for subject in subjects]
            response = _combine(results)
            if scope is not None:
                await tx.remember_response(scope, response.status, jsonutil.dumps(response.body).decode())
    except IntegrityError:
        if scope is None:
            raise
        async with repository.reader() as tx:  # a concurrent retry with the same key committed first
            earlier = await tx.idempotent_response(scope)
        if earlier is None:
            raise
        return ApplyResponse(earlier[0], jsonutil.loads(earlier[1]))
    return response


async def apply_activity(
    repository: Repository, activity_id: str, inputs: OperationInput, *, now: datetime | None = None
) -> ApplyResponse:
    subject = reference_text(inputs.one("subject"), "subject") if inputs.all("subject") else None
    if subject is None:
        raise InvalidRequest("$apply needs a 'subject' parameter", expression=("Parameters.parameter",))
    async with repository.reader() as tx:
        activity = (await tx.read(("ActivityDefinition"), activity_id)).json()
        resolver = DictResolver(await _definitions(tx, activity))
        ctx = await _context(tx, subject, inputs, now or datetime.now(UTC))
    return ApplyResponse(200, apply_activity_definition(activity, resolver, ctx))


async def _find_plan(tx: StoreTransaction, plan_id: str | None, inputs: OperationInput) -> dict[str, Any]:
    if plan_id is not None:
        return (await tx.read("PlanDefinition", plan_id)).json()
    inline = inputs.one("planDefinition")
    if isinstance(inline, dict):
        return inline
    url = inputs.one("url")
    if not isinstance(url, str):
        raise InvalidRequest("Type-level $apply needs 'planDefinition' (a resource) or 'url' [+ 'version']")
    version = inputs.one("version")
    canonical = f"{url}|{version}" if version else url
    found = await tx.find_definition("PlanDefinition", canonical)
    if found is None:
        raise NotFound(f"No PlanDefinition {canonical}")
    return found


async def _definitions(tx: StoreTransaction, root: dict[str, Any]) -> list[dict[str, Any]]:
    """Every definition `root` refers to, transitively (nested PlanDefinitions), loaded before the engine runs."""
    loaded: dict[str, dict[str, Any]] = {}
    pending = set(_canonicals(root))
    for _ in range(_MAX_DEPTH):
        if not pending:
            break
        found = []
        for canonical in sorted(pending):
            loaded[canonical] = {}
            resource = await tx.find_definition(None, canonical)
            if resource is not None:
                loaded[canonical] = resource
                found.append(resource)
        pending = {c for r in found for c in _canonicals(r)} - loaded.keys()
    return [root, *(r for r in loaded.values() if r)]


def _canonicals(value: Any) -> list[str]:
    if isinstance(value, dict):
        out = [v for k, v in value.items() if k in ("definitionCanonical", "library") and isinstance(v, str)]
        for k, v in value.items():
            if k == "contained":
                continue
            out.extend(_canonicals(v))
        return out
    if isinstance(value, list):
        return [c for v in value for c in _canonicals(v)]
    return []


async def _context(tx: StoreTransaction, subject: str, inputs: OperationInput, now: datetime) -> ApplyContext:
    data = inputs.one("data")
    if data is not None and not (isinstance(data, dict) and data.get("resourceType") == "Bundle"):
        raise InvalidRequest("Parameter 'data' must be a Bundle", expression=("Parameters.parameter",))
    entries = list((data or {}).get("entry") or [])
    if inputs.boolean("useServerData", True):
        known = {_key(e.get("resource")) for e in entries}
        entries += [{"resource": r} for r in await tx.subject_record(subject) if _key(r) not in known]
    refs = {name: (reference_text(inputs.one(name), name) if inputs.all(name) else None)
            for name in ("encounter", "practitioner", "organization")}  # fmt: skip
    parameters = inputs.one("parameters")
    return ApplyContext(
        subject=subject, now=now, data={"resourceType": "Bundle", "type": "collection", "entry": entries},
        encounter=refs["encounter"], practitioner=refs["practitioner"], organization=refs["organization"],
        user_type=inputs.one("userType"), user_language=inputs.one("userLanguage"),
        user_task_context=inputs.one("userTaskContext"), setting=inputs.one("setting"),
        setting_context=inputs.one("settingContext"),
        parameters=parameters if isinstance(parameters, dict) else None,
    )  # fmt: skip


def _key(resource: Any) -> tuple[str, str] | None:
    if isinstance(resource, dict) and resource.get("id"):
        return (str(resource.get("resourceType")), str(resource["id"]))
    return None


async def _apply_one(
    tx: StoreTransaction, plan: dict[str, Any], resolver: DictResolver, subject: str, inputs: OperationInput,
    now: datetime, persist: bool,
) -> tuple[ApplyResult, dict[str, Any]]:  # fmt: skip
    ctx = await _context(tx, subject, inputs, now)
    result = apply_plan_definition(plan, resolver, ctx)
    if not (persist and result.applicable):
        return result, result.careplan
    plan_ref = f"PlanDefinition/{plan['id']}/_history/{plan['meta']['versionId']}" if plan.get("meta") else None
    bundle = to_transaction_bundle(result, plan_reference=plan_ref, ctx=ctx)
    responses = await run_transaction(tx, bundle["entry"], "")
    careplan_id = responses[0]["response"]["location"].split("/")[1]
    return result, (await tx.read("CarePlan", careplan_id)).json()


def _combine(results: list[tuple[ApplyResult, dict[str, Any]]]) -> ApplyResponse:
    bodies = [_body(result, careplan) for result, careplan in results]
    engine_results = tuple(result for result, _ in results)
    if len(bodies) == 1:
        return ApplyResponse(200, bodies[0], engine_results)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": b} for b in bodies]}
    return ApplyResponse(200, bundle, engine_results)


def _body(result: ApplyResult, careplan: dict[str, Any]) -> dict[str, Any]:
    """The CarePlan; when the pathway does not apply at all, an informational OperationOutcome instead."""
    if result.applicable:
        return careplan
    subject = careplan.get("subject", {}).get("reference", "the subject")
    head = Issue(f"The PlanDefinition does not apply to {subject}: nothing was created", "informational",
                 "information")  # fmt: skip
    return operation_outcome([head, *result.issues])

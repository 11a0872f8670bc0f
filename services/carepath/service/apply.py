"""`PlanDefinition/$apply` and `ActivityDefinition/$apply` (R4 §12.18.20 / §12.19.20) over the pure engine.

This module does the I/O the engine must not: it finds the definition and everything it refers to
(`apply_definitions`), gathers the subject's record (`useServerData`), and with `persist=true` stores the whole
result — CarePlan, RequestGroup, requests, Tasks, Goals and a Provenance — in one transaction
(`apply_persist`), keyed by the client's `Idempotency-Key` so a retried call returns the first result instead of
a second CarePlan. It also gives the engine its FHIRPath evaluation time budget (one per call, on the
monotonic clock; CAREPATH_APPLY_EVALUATION_LIMIT_MS unless the caller passes its own settings' limit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from carepath import jsonutil
from carepath.engine import (
    ApplyContext,
    ApplyResult,
    DictResolver,
    EvaluationBudget,
    apply_activity_definition,
    apply_plan_definition,
    to_transaction_bundle,
)
from carepath.errors import Gone, InvalidRequest, Issue, NotFound, operation_outcome
from carepath.service.apply_definitions import Definitions, plan_from_inputs, stored_definitions
from carepath.service.apply_inputs import check_inputs
from carepath.service.apply_persist import persist, with_messages
from carepath.service.parameters import OperationInput, reference_text
from carepath.service.transactions import run_in_transaction
from carepath.settings import get_settings
from carepath.store.repository import Repository, StoreTransaction


@dataclass(frozen=True)
class ApplyResponse:
    status: int
    body: dict[str, Any]
    results: tuple[ApplyResult, ...] = ()  # the engine's results; empty when an earlier response was replayed


async def apply_plan(
    repository: Repository, plan_id: str | None, inputs: OperationInput, *, idempotency_key: str | None,
    now: datetime | None = None, evaluation_limit_ms: int | None = None,
) -> ApplyResponse:  # fmt: skip
    now = now or datetime.now(UTC)
    check_inputs(inputs)
    subjects = [reference_text(s, "subject") for s in inputs.all("subject")]
    if not subjects:
        raise InvalidRequest("$apply needs at least one 'subject' parameter", expression=("Parameters.parameter",))
    persisted = inputs.boolean("persist", False)
    scope = f"PlanDefinition/{plan_id or ''}/$apply:{idempotency_key}" if persisted and idempotency_key else None
    fingerprint = inputs.fingerprint()

    async def unit_of_work(tx: StoreTransaction) -> ApplyResponse:
        # The retry check shares the write transaction: one BEGIN/COMMIT per call, not two.
        earlier = await tx.idempotent_response(scope, fingerprint) if scope is not None else None
        if earlier is not None:
            return _replayed(earlier)
        definitions = await _plan(repository, tx, plan_id, inputs)
        budget = _budget(evaluation_limit_ms)  # per attempt: a re-run after a conflict starts afresh
        results = [await _apply_one(tx, definitions, subject, inputs, now, persisted, budget)
                   for subject in subjects]  # fmt: skip
        response = _combine(results)
        if scope is not None:
            await tx.remember_response(scope, fingerprint, response.status, jsonutil.dumps(response.body).decode())
        return response

    try:
        if persisted:  # re-run as a whole if a concurrent transaction aborts it (service.transactions)
            return await run_in_transaction(repository, unit_of_work)
        # A transient apply writes nothing: a read-only transaction does not queue behind writers (SQLite).
        async with repository.reader() as tx:
            return await unit_of_work(tx)
    except IntegrityError:
        if scope is None:
            raise
        async with repository.reader() as tx:  # a concurrent call with the same key committed first: its answer
            earlier = await tx.idempotent_response(scope, fingerprint)
        if earlier is None:
            raise
        return _replayed(earlier)


def _budget(limit_ms: int | None) -> EvaluationBudget:
    limit = get_settings().apply_evaluation_limit_ms if limit_ms is None else limit_ms
    return EvaluationBudget(limit, time.monotonic)


def _replayed(earlier: tuple[int, str]) -> ApplyResponse:
    return ApplyResponse(earlier[0], jsonutil.loads(earlier[1]))


async def apply_activity(
    repository: Repository, activity_id: str | None, inputs: OperationInput, *, now: datetime | None = None,
    evaluation_limit_ms: int | None = None,
) -> ApplyResponse:  # fmt: skip
    """Instance level (`activity_id`), or type level with the `activityDefinition` resource (R4: required there,
    not allowed at the instance level)."""
    check_inputs(inputs)
    subject = reference_text(inputs.one("subject"), "subject") if inputs.all("subject") else None
    if subject is None:
        raise InvalidRequest("$apply needs a 'subject' parameter", expression=("Parameters.parameter",))
    inline = inputs.one("activityDefinition")
    if (inline is None) == (activity_id is None):
        raise InvalidRequest("Give 'activityDefinition' at the type level, and only there",
                             expression=("Parameters.parameter",))  # fmt: skip
    async with repository.reader() as tx:
        if isinstance(inline, dict):  # a valid ActivityDefinition (check_inputs)
            definitions = Definitions(inline, DictResolver([inline]))
        else:
            definitions = await stored_definitions(repository, tx, "ActivityDefinition", str(activity_id))
        ctx, _ = await _context(tx, definitions, subject, inputs, now or datetime.now(UTC),
                                budget=_budget(evaluation_limit_ms))  # fmt: skip
    return ApplyResponse(200, apply_activity_definition(definitions.root, definitions.resolver, ctx))


async def _plan(
    repository: Repository, tx: StoreTransaction, plan_id: str | None, inputs: OperationInput
) -> Definitions:
    if plan_id is not None:
        return await stored_definitions(repository, tx, "PlanDefinition", plan_id)
    return await plan_from_inputs(tx, inputs)


async def _context(
    tx: StoreTransaction,
    definitions: Definitions,
    subject: str,
    inputs: OperationInput,
    now: datetime,
    *,
    budget: EvaluationBudget,
    persist: bool = False,
) -> tuple[ApplyContext, list[str]]:
    """The engine's input, and the versioned references of the stored resources it was given (for Provenance)."""
    data, used = await _data(tx, subject, inputs, definitions.requirements.types)
    refs = {name: (reference_text(inputs.one(name), name) if inputs.all(name) else None)
            for name in ("encounter", "practitioner", "organization")}  # fmt: skip
    parameters = inputs.one("parameters")
    return ApplyContext(
        subject=subject, now=now, data=data,
        encounter=refs["encounter"], practitioner=refs["practitioner"], organization=refs["organization"],
        user_type=inputs.one("userType"), user_language=inputs.one("userLanguage"),
        user_task_context=inputs.one("userTaskContext"), setting=inputs.one("setting"),
        setting_context=inputs.one("settingContext"),
        parameters=parameters if isinstance(parameters, dict) else None, persist=persist, budget=budget,
    ), used  # fmt: skip


async def _data(
    tx: StoreTransaction, subject: str, inputs: OperationInput, types: frozenset[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """`data` plus, with `useServerData` (default true), the subject's stored record; a supplied copy wins.

    Only the resource types the definitions can read (`types`, None: all) are fetched: the engine gets the
    clinical record it needs, not carepath's own earlier CarePlans, Tasks and Provenances (unless a pathway's
    expressions ask for them), and the Provenance lists exactly what it was given. A subject neither supplied
    nor stored is a 404 naming `subject`: applied to nothing, the pathway would answer "does not apply", and a
    mistyped id would read like a patient who does not qualify."""
    data = inputs.one("data")  # a valid Bundle (check_inputs)
    entries = list((data or {}).get("entry") or [])
    used: list[str] = []
    supplied = any(_key(e.get("resource")) == _subject_key(subject) or e.get("fullUrl") == subject for e in entries)
    if inputs.boolean("useServerData", True):
        known = {_key(e.get("resource")) for e in entries}
        record = await tx.subject_record(subject, types)
        stored = [r for r in record if _key(r) not in known]
        entries += [{"resource": r} for r in stored]
        used = [f"{r['resourceType']}/{r['id']}/_history/{r['meta']['versionId']}" for r in stored
                if f"{r['resourceType']}/{r['id']}" != subject]  # fmt: skip
        found = supplied or any(_key(r) == _subject_key(subject) for r in record)
    else:
        found = supplied or await _stored(tx, subject)
    if not found:
        raise NotFound(f"The subject {subject} is neither stored nor in 'data'", expression=("subject",))
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, used


def _subject_key(subject: str) -> tuple[str, str]:
    res_type, _, res_id = subject.rstrip("/").rpartition("/")
    return res_type.rpartition("/")[2], res_id


async def _stored(tx: StoreTransaction, subject: str) -> bool:
    try:
        await tx.read(*_subject_key(subject))
    except (NotFound, Gone):
        return False
    return True


def _key(resource: Any) -> tuple[str, str] | None:
    if isinstance(resource, dict) and resource.get("id"):
        return (str(resource.get("resourceType")), str(resource["id"]))
    return None


async def apply_in_transaction(
    repository: Repository, tx: StoreTransaction, plan_id: str, subject: str, now: datetime, cause: dict[str, Any]
) -> dict[str, Any] | None:
    """`$apply persist=true` of a stored PlanDefinition to one subject inside the caller's open transaction (the
    event-driven enrolment); the stored CarePlan, or None when the pathway does not apply to the subject."""
    definitions = await stored_definitions(repository, tx, "PlanDefinition", plan_id)
    inputs = OperationInput({"subject": [subject]})
    result, careplan = await _apply_one(tx, definitions, subject, inputs, now, True, _budget(None), cause=cause)
    return careplan if result.applicable else None


async def fresh_bundle(
    repository: Repository, tx: StoreTransaction, plan_id: str, subject: str, now: datetime, cause: dict[str, Any]
) -> dict[str, Any] | None:
    """The transaction Bundle a `$apply` of the stored PlanDefinition would store now (nothing is stored), its
    Provenance naming `cause`; None when the pathway does not apply (re-evaluation of an active CarePlan)."""
    definitions = await stored_definitions(repository, tx, "PlanDefinition", plan_id)
    inputs = OperationInput({"subject": [subject]})
    ctx, used = await _context(tx, definitions, subject, inputs, now, budget=_budget(None), persist=True)
    result = apply_plan_definition(definitions.root, definitions.resolver, ctx)
    if not result.applicable:
        return None
    extra = [*({"reference": reference} for reference in used), cause]
    return to_transaction_bundle(result, plan_reference=definitions.version_reference, ctx=ctx, extra_inputs=extra)


async def _apply_one(
    tx: StoreTransaction, definitions: Definitions, subject: str, inputs: OperationInput, now: datetime,
    persisted: bool, budget: EvaluationBudget, *, cause: dict[str, Any] | None = None,
) -> tuple[ApplyResult, dict[str, Any]]:  # fmt: skip
    ctx, used = await _context(tx, definitions, subject, inputs, now, budget=budget, persist=persisted)
    result = apply_plan_definition(definitions.root, definitions.resolver, ctx)
    if not result.applicable:
        return result, result.careplan
    if not persisted:
        return result, with_messages(result.careplan, result.issues)
    return result, await persist(tx, definitions, result, ctx, used, cause=cause)


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

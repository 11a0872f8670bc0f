"""What `$apply` hands back and stores: the CarePlan with the engine's messages, persisted in one transaction.

Engine issues on an applicable result (an action skipped because its condition was false, a relatedAction naming
no action, ...) are not errors, but the caller should see them: they travel with the CarePlan as a contained
OperationOutcome referenced by R4's `cqf-messages` extension (a contained resource must be referenced), and are
stored with it when persisted, so a coordinator can later see why an action produced nothing.

A generated resource the store refuses (the pathway produced an invalid request) is the pathway's fault, not
the caller's request: it becomes a 422 naming the action that produced it, and nothing is stored.

The same transaction queues the outbound events `dev.carepath.careplan.created` and one
`dev.carepath.task.created` per Task (outbox rows, relayed after commit), so they exist if and only if the
CarePlan does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from carepath import jsonutil
from carepath.domain_events import DomainEvent
from carepath.engine import ApplyContext, ApplyResult, to_transaction_bundle
from carepath.engine.explain import GENERATED_BY
from carepath.errors import BusinessRuleViolation, CarepathError, InvalidRequest, Issue, operation_outcome
from carepath.service.apply_definitions import Definitions
from carepath.service.bundles import run_transaction
from carepath.service.routing import route_tasks
from carepath.store.repository import StoreTransaction

CQF_MESSAGES = "http://hl7.org/fhir/StructureDefinition/cqf-messages"
MESSAGES_ID = "messages"  # engine ids are `<type>-<n>`, so this one cannot collide
_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]: ")  # how run_transaction names the failing entry


def with_messages(careplan: dict[str, Any], issues: list[Issue]) -> dict[str, Any]:
    """The CarePlan plus, when there are issues, a contained OperationOutcome referenced through cqf-messages."""
    if not issues:
        return careplan
    outcome = {"resourceType": "OperationOutcome", "id": MESSAGES_ID, **operation_outcome(issues)}
    reference = {"url": CQF_MESSAGES, "valueReference": {"reference": f"#{MESSAGES_ID}"}}
    return {**careplan, "contained": [*careplan.get("contained", []), outcome],
            "extension": [*careplan.get("extension", []), reference]}  # fmt: skip


async def persist(
    tx: StoreTransaction, definitions: Definitions, result: ApplyResult, ctx: ApplyContext, used: list[str],
    *, cause: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Store the result as real resources inside `tx`; returns the stored CarePlan (as it was written).

    The Provenance names the PlanDefinition version, every stored resource version (`used`) the engine saw and,
    for an event-driven enrolment, the triggering event (`cause`, a Provenance.entity).
    """
    inputs = [{"reference": reference} for reference in used] + ([cause] if cause else [])
    bundle = to_transaction_bundle(result, plan_reference=definitions.version_reference, ctx=ctx, extra_inputs=inputs)
    entries = bundle["entry"]
    entries[0]["resource"] = with_messages(entries[0]["resource"], result.issues)  # entry 0 is the CarePlan
    tasks = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Task"]
    await route_tasks(tx, tasks, ctx.subject, ctx.now)  # "my tasks": the CareTeam member in each Task's role
    try:
        responses = await run_transaction(tx, entries, "")
    except InvalidRequest as exc:
        raise _pathway_fault(exc, entries, definitions.root) from exc
    # The response entries carry the stored JSON (orjson Fragments, dumped as is): no need to read them back.
    stored = [jsonutil.loads(jsonutil.dumps(r["resource"])) for r in responses]
    await _queue_events(tx, stored, definitions.root)
    return stored[0]  # type: ignore[no-any-return]


async def _queue_events(tx: StoreTransaction, stored: list[dict[str, Any]], plan: dict[str, Any]) -> None:
    careplan = stored[0]
    subject = str((careplan.get("subject") or {}).get("reference", ""))
    attributes = {"careplan": f"CarePlan/{careplan['id']}", "pathway": f"{plan.get('url')}|{plan.get('version')}"}
    await tx.add_event(DomainEvent("dev.carepath.careplan.created", subject, careplan, **attributes))
    for resource in stored:
        if resource["resourceType"] == "Task":
            await tx.add_event(DomainEvent("dev.carepath.task.created", subject, resource, **attributes))


def _pathway_fault(exc: InvalidRequest, entries: list[dict[str, Any]], plan: dict[str, Any]) -> CarepathError:
    """The store's refusal of a generated resource, restated as the pathway's fault naming the action."""
    match = _ENTRY.match(exc.diagnostics)
    if match is None or int(match[1]) >= len(entries):
        return exc
    resource = entries[int(match[1])]["resource"]
    action_id = _generated_by(resource, "actionId")
    path = next(_action_paths(plan.get("action", []), "PlanDefinition", action_id), None) if action_id else None
    what = f"action '{action_id}'" if action_id else "the PlanDefinition"
    detail = exc.diagnostics[match.end() :]
    return BusinessRuleViolation(
        f"Applying the pathway to this subject produced an invalid {resource['resourceType']} for {what}: {detail}",
        expression=(path,) if path else (),
        issues=[Issue(detail, exc.code, "error", exc.expression), *exc.extra_issues],
    )


def _generated_by(resource: dict[str, Any], part: str) -> str | None:
    for extension in resource.get("extension", []):
        if extension.get("url") == GENERATED_BY:
            return next((p.get("valueString") for p in extension.get("extension", []) if p.get("url") == part), None)
    return None


def _action_paths(actions: list[dict[str, Any]], prefix: str, action_id: str) -> Iterator[str]:
    for i, action in enumerate(actions):
        path = f"{prefix}.action[{i}]"
        if action.get("id") == action_id:
            yield path
        yield from _action_paths(action.get("action", []), path, action_id)

"""ActivityDefinition -> request resource (R4 ActivityDefinition/$apply), without the dynamic values.

`kind` decides the resource; content without a kind (e.g. the spec's chemotherapy order templates) is a
MedicationRequest when it names a product or dosage, else a Task. Status and intent follow `lifecycle` and, for
what a RequestGroup action points to, `action_intent`: no request but a Task is ever an order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from carepath.engine.context import ApplyContext
from carepath.engine.timing import Interval, format_instant, parse_instant
from carepath.errors import BusinessRuleViolation, NotSupported

TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
SUPPORTED_KINDS = ("Task", "ServiceRequest", "CommunicationRequest", "MedicationRequest")


def ref(reference: str | None) -> dict[str, Any] | None:
    return {"reference": reference} if reference else None


def canonical_of(definition: dict[str, Any]) -> str | None:
    url = definition.get("url")
    if not url:
        return None
    return f"{url}|{definition['version']}" if definition.get("version") else str(url)


def request_kind(activity: dict[str, Any]) -> str:
    kind = activity.get("kind")
    if kind:
        return str(kind)
    has_product = any(k.startswith("product") for k in activity) or "dosage" in activity
    return "MedicationRequest" if has_product else "Task"


@dataclass(frozen=True)
class Performers:
    """Who does the work, from ActivityDefinition/action participants (R4: type + role)."""

    references: tuple[dict[str, Any], ...]
    roles: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, participants: list[dict[str, Any]], ctx: ApplyContext) -> Performers:
        references: list[dict[str, Any]] = []
        for participant in participants:
            who = {"patient": ctx.subject, "practitioner": ctx.practitioner}.get(str(participant.get("type")))
            if who and {"reference": who} not in references:
                references.append({"reference": who})
        roles = tuple(p["role"] for p in participants if p.get("role"))
        return cls(tuple(references), roles)


def _task(activity: dict[str, Any], out: dict[str, Any], performers: Performers, ctx: ApplyContext) -> None:
    out["for"] = {"reference": ctx.subject}
    if activity.get("code"):
        out["code"] = activity["code"]
    if performers.references:
        out["owner"] = performers.references[0]
    if performers.roles:
        out["performerType"] = list(performers.roles)


def _service_request(activity: dict[str, Any], out: dict[str, Any], performers: Performers, ctx: ApplyContext) -> None:
    out["subject"] = {"reference": ctx.subject}
    for key in ("code", "bodySite", "doNotPerform"):
        if key in activity:
            out[key] = activity[key]
    if "quantity" in activity:
        out["quantityQuantity"] = activity["quantity"]
    if performers.roles:
        out["performerType"] = performers.roles[0]
    if performers.references:
        out["performer"] = list(performers.references)


def _communication_request(
    activity: dict[str, Any], out: dict[str, Any], performers: Performers, ctx: ApplyContext
) -> None:
    out["subject"] = {"reference": ctx.subject}
    if activity.get("code"):
        out["category"] = [activity["code"]]
    if activity.get("doNotPerform") is not None:
        out["doNotPerform"] = activity["doNotPerform"]
    text = activity.get("description") or activity.get("title")
    if text:
        out["payload"] = [{"contentString": text}]
    if any(r["reference"] == ctx.subject for r in performers.references):
        out["recipient"] = [{"reference": ctx.subject}]
    if ctx.practitioner and any(r["reference"] == ctx.practitioner for r in performers.references):
        out["sender"] = {"reference": ctx.practitioner}


def _medication(activity: dict[str, Any], where: str) -> dict[str, Any]:
    """medication[x]: a product contained in the definition cannot travel, so its code stands in for it."""
    if "productCodeableConcept" in activity:
        return {"medicationCodeableConcept": activity["productCodeableConcept"]}
    product = activity.get("productReference")
    if isinstance(product, dict) and str(product.get("reference", "")).startswith("#"):
        contained = {f"#{r.get('id')}": r for r in activity.get("contained", [])}
        medication = contained.get(product["reference"])
        if medication and medication.get("code"):
            return {"medicationCodeableConcept": medication["code"]}
        raise BusinessRuleViolation(
            "productReference points to no contained Medication with a code", expression=(where,)
        )
    if product:
        return {"medicationReference": product}
    if activity.get("code"):
        return {"medicationCodeableConcept": activity["code"]}
    raise BusinessRuleViolation("A MedicationRequest definition needs product[x] or code", expression=(where,))


def _medication_request(
    activity: dict[str, Any], out: dict[str, Any], performers: Performers, ctx: ApplyContext
) -> None:
    out["subject"] = {"reference": ctx.subject}
    out.update(_medication(activity, "ActivityDefinition.product"))
    if activity.get("dosage"):
        out["dosageInstruction"] = activity["dosage"]
    if activity.get("doNotPerform") is not None:
        out["doNotPerform"] = activity["doNotPerform"]
    if performers.roles:
        out["performerType"] = performers.roles[0]
    if performers.references:
        out["performer"] = performers.references[0]


_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any], Performers, ApplyContext], None]] = {
    "Task": _task, "ServiceRequest": _service_request, "CommunicationRequest": _communication_request,
    "MedicationRequest": _medication_request,
}  # fmt: skip


Intent = Literal["option", "order"]


def lifecycle(resource_type: str, intent: Intent) -> dict[str, str]:
    """status and intent. Only a Task is ever an `order` (`requested`); any other request asked for as an order is a
    `proposal` in `draft` (carepath proposes, clinicians decide: nothing that could start a treatment is generated
    as an active order), an option is an `option` in `draft`; R4 CommunicationRequest has no intent, so its
    `draft` status alone marks it proposed."""
    if intent == "order" and resource_type == "Task":
        return {"status": "requested", "intent": "order"}
    if resource_type == "CommunicationRequest":
        return {"status": "draft"}
    return {"status": "draft", "intent": "proposal" if intent == "order" else intent}


def action_intent(resource_type: str, *, option: bool, persist: bool) -> Intent:
    """What a resource a RequestGroup action points to is: R4 says such resources SHALL be `option`s (the
    RequestGroup is the plan that orders them), which is what a transient `$apply` returns. Persisted, the
    Tasks become the worklist's orders, except those proposed as one of several choices; the requests stay
    options."""
    return "order" if persist and not option and resource_type == "Task" else "option"


def build_request(
    activity: dict[str, Any], ctx: ApplyContext, *, intent: Intent, participants: list[dict[str, Any]], where: str
) -> dict[str, Any]:
    """The request an ActivityDefinition describes for this subject (no ids, timing or dynamic values yet)."""
    kind = request_kind(activity)
    if kind not in _BUILDERS:
        raise NotSupported(f"ActivityDefinition kind {kind!r} is not supported by $apply", expression=(where,))
    out: dict[str, Any] = {"resourceType": kind, **lifecycle(kind, intent)}
    canonical = canonical_of(activity)
    if canonical and kind == "Task":
        out["instantiatesCanonical"] = canonical
    elif canonical and kind in ("ServiceRequest", "MedicationRequest"):
        out["instantiatesCanonical"] = [canonical]
    if activity.get("priority"):
        out["priority"] = activity["priority"]
    _BUILDERS[kind](activity, out, Performers.of(list(activity.get("participant", [])) + participants, ctx), ctx)
    if kind == "Task" and (activity.get("title") or activity.get("description")):
        out["description"] = activity.get("title") or activity.get("description")
    _common(out, ctx)
    # The builders copy elements of the definition by reference; a dynamicValue on a nested path (`code.coding`)
    # would then write into the stored ActivityDefinition and leak into every later apply.
    return copy.deepcopy(out)


def _common(out: dict[str, Any], ctx: ApplyContext) -> None:
    out["authoredOn"] = format_instant(ctx.now)
    if ctx.encounter:
        out["encounter"] = {"reference": ctx.encounter}
    requester = ctx.practitioner or ctx.organization
    if requester:
        out["requester"] = {"reference": requester}


def plain_task(ctx: ApplyContext, *, intent: Intent, description: str | None) -> dict[str, Any]:
    """A Task that is not built from an ActivityDefinition (Questionnaire, definitionUri, companion Task)."""
    out: dict[str, Any] = {"resourceType": "Task", **lifecycle("Task", intent), "for": {"reference": ctx.subject}}
    if description:
        out["description"] = description
    _common(out, ctx)
    return out


def companion_task(
    request: dict[str, Any], request_id: str, ctx: ApplyContext, option: bool, roles: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """carepath's worklist is Task-based: a `fulfill` Task for every request that is not itself a Task.

    `roles` are the definition's participant roles: all of them go to `Task.performerType` (0..*), which routes
    the Task, though a ServiceRequest keeps only one (0..1) and a CommunicationRequest has none.
    """
    task = plain_task(ctx, intent="option" if option else "order", description=None)
    task["code"] = {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill"}]}
    task["focus"] = {"reference": f"#{request_id}"}
    for key in ("priority",):
        if key in request:
            task[key] = request[key]
    performer = request.get("performer")
    owner = performer[0] if isinstance(performer, list) and performer else performer
    if isinstance(owner, dict):
        task["owner"] = owner
    performer_type = request.get("performerType")
    if roles:
        task["performerType"] = list(roles)
    elif performer_type:
        task["performerType"] = performer_type if isinstance(performer_type, list) else [performer_type]
    return task


def set_interval(resource: dict[str, Any], interval: Interval | None) -> None:
    """Concrete dates: Task.restriction.period (end = due date), request occurrence[x]."""
    if interval is None or (interval.start is None and interval.end is None):
        return
    period = {k: format_instant(v) for k, v in (("start", interval.start), ("end", interval.end)) if v is not None}
    kind = resource["resourceType"]
    if kind == "Task":
        resource.setdefault("restriction", {})["period"] = period
    elif kind in ("ServiceRequest", "CommunicationRequest"):
        if interval.start is not None and interval.start == interval.end:
            resource["occurrenceDateTime"] = period["start"]
        else:
            resource["occurrencePeriod"] = period


def read_interval(resource: dict[str, Any]) -> Interval | None:
    """The interval a built resource ends up with (after dynamic values), for its successors' arithmetic."""
    if resource["resourceType"] == "Task":
        period = (resource.get("restriction") or {}).get("period")
    elif isinstance(resource.get("occurrenceDateTime"), str):
        period = {"start": resource["occurrenceDateTime"], "end": resource["occurrenceDateTime"]}
    else:
        period = resource.get("occurrencePeriod")
    if not isinstance(period, dict):
        return None
    try:
        return Interval(
            parse_instant(period["start"]) if period.get("start") else None,
            parse_instant(period["end"]) if period.get("end") else None,
        )
    except (ValueError, OverflowError) as exc:
        raise BusinessRuleViolation(f"A dynamic value produced an invalid date: {exc}") from exc

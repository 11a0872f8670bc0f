"""The audit trail: an R4 AuditEvent per access to patient data, per `$apply` and per failed authentication.

Events are built here from plain values and queued; `AuditTrail` writes the queue in batches (one transaction
per batch, at least every `FLUSH_INTERVAL_S`), so a read costs an append to a list, not a second commit, and an
event is searchable within about a second. Events are resources like any other, searchable by agent, entity,
patient, date, outcome and type; the API refuses to update or delete them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carepath.auth.tokens import Principal
from carepath.store.records import instant
from carepath.store.repository import Repository

log = logging.getLogger("carepath.audit")

FLUSH_INTERVAL_S = 0.5
_BATCH = 200
_MAX_QUEUE = 50_000  # beyond this the service is not keeping up; dropping is logged, never silent

_REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
         "display": "RESTful Operation"}  # fmt: skip
_LOGIN = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication"}
_LOGIN_SUB = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"}
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ACTION = {"create": "C", "read": "R", "vread": "R", "history-instance": "R", "history-type": "R",
           "history-system": "R", "search-type": "E", "update": "U", "patch": "U", "delete": "D", "batch": "E",
           "transaction": "E", "operation": "E"}  # fmt: skip
_SOURCE_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                "display": "Application Server"}  # fmt: skip
_ENTITY_PERSON = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                  "display": "Person"}  # fmt: skip
_ENTITY_OBJECT = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                  "display": "System Object"}  # fmt: skip
_ROLE_PATIENT = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
_ROLE_QUERY = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"}


@dataclass(frozen=True)
class Request:
    """What the transport knows about the request being audited."""

    address: str
    interaction: str
    res_type: str | None
    status: int


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # `instant` renders naive UTC


def outcome_code(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (the client's), 8 serious failure (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _agent(principal: Principal | None, address: str) -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True, "network": {"address": address, "type": "2"}}
    if principal is None:
        agent["name"] = "unauthenticated client"
        return agent
    who: dict[str, Any] = {"identifier": {"system": principal.issuer, "value": principal.subject},
                           "display": principal.client_id}  # fmt: skip
    if principal.fhir_user and "/" in principal.fhir_user:
        who["reference"] = principal.fhir_user
    agent.update(who=who, altId=principal.subject, name=principal.client_id)
    return agent


def _base(request: Request, principal: Principal | None, source: str, now: datetime) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _REST,
        "subtype": [{"system": _INTERACTION, "code": request.interaction}],
        # An update that created the resource (201) is a create as far as the record is concerned.
        "action": "C"
        if request.interaction == "update" and request.status == 201
        else _ACTION.get(request.interaction, "E"),
        "recorded": instant(now),
        "outcome": outcome_code(request.status),
        "agent": [_agent(principal, request.address)],
        "source": {"site": source, "observer": {"display": "carepath"}, "type": [_SOURCE_TYPE]},
    }
    if request.status >= 400:
        event["outcomeDesc"] = f"HTTP {request.status}"
    return event


def access_event(
    request: Request, principal: Principal | None, *, touched: Iterable[str], patients: Iterable[str],
    source: str, now: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One AuditEvent: `touched` are "Type/id" references, `patients` the ids of the patients concerned."""
    event = _base(request, principal, source, now or _utcnow())
    entities: list[dict[str, Any]] = [{"what": {"reference": ref}, "type": _ENTITY_OBJECT}
                                      for ref in dict.fromkeys(touched) if not ref.startswith("Patient/")]  # fmt: skip
    entities += [{"what": {"reference": f"Patient/{pid}"}, "type": _ENTITY_PERSON, "role": _ROLE_PATIENT}
                 for pid in sorted(set(patients))]  # fmt: skip
    if request.interaction.startswith(("search", "history")) and request.res_type:
        # A query entity names the type searched, never the values (they can be patient names).
        entities.append({"type": _ENTITY_OBJECT, "role": _ROLE_QUERY, "description": f"{request.res_type} search"})
    if entities:
        event["entity"] = entities
    return event


def failure_event(address: str, status: int, source: str, now: datetime | None = None) -> dict[str, Any]:
    event = _base(Request(address, "", None, status), None, source, now or _utcnow())
    event.update(type=_LOGIN, subtype=[_LOGIN_SUB], action="E", outcomeDesc="access token refused")
    return event


class AuditTrail:
    """A queue of AuditEvents written in batches by one background task per event loop."""

    def __init__(self) -> None:
        self._queue: list[dict[str, Any]] = []
        self._repository: Repository | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def record(self, repository: Repository, event: dict[str, Any]) -> None:
        self._repository = repository
        if len(self._queue) >= _MAX_QUEUE:
            log.error("audit queue full (%d events): an AuditEvent was dropped", _MAX_QUEUE)
            return
        self._queue.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._queue) >= _BATCH:
            self._wake.set()

    async def _run(self) -> None:
        while self._queue:
            with contextlib.suppress(TimeoutError):  # woken early by a full batch, else every interval
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far (also called at shutdown, and by tests that query at once)."""
        while self._queue and self._repository is not None:
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            try:
                async with self._repository.transaction() as tx:
                    for event in batch:
                        # Built here from a fixed shape that tests/unit/test_audit_events.py validates; not
                        # through the service's create: no stop rules or outbound events for the audit trail.
                        await tx.create(event, validated=True)
            except Exception:  # the store is down: the events are lost, loudly, and the request path never waits
                log.exception("writing %d AuditEvents failed", len(batch))

    async def close(self) -> None:
        await self.flush()
        if self._task is not None and not self._task.done():
            self._task.cancel()

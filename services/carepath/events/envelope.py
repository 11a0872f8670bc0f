"""CloudEvents 1.0 structured-mode JSON, in and out (https://github.com/cloudevents/spec, v1.0.2).

Inbound only the four required attributes are required (`specversion` "1.0", `id`, `source`, `type`; §3.1);
`subject`, `time` and `datacontenttype` are optional. Outbound every attribute the contract names is set, and
the CarePlan and the pathway travel as the extension attributes `careplan` and `pathway`.
"""

from __future__ import annotations

from typing import Any

from carepath import jsonutil
from carepath.errors import InvalidRequest, NotSupported
from carepath.service.event_intake import INBOUND_TYPES, InboundEvent
from carepath.service.trigger_queue import RESOURCE_STORED
from carepath.store.outbox import OutboxRow
from carepath.store.records import instant

FHIR_JSON = "application/fhir+json"
_MAX_KEY_PART = 255  # source and id together are the idempotency key (processed_event.key, 512 characters)


def parse_inbound(raw: bytes | str) -> InboundEvent:
    """The event of a stream entry's `event` field; InvalidRequest / NotSupported for poison."""
    try:
        value = jsonutil.loads(raw)
    except InvalidRequest as exc:
        raise InvalidRequest(f"The entry's event is not JSON: {exc.diagnostics}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("The entry's event must be a JSON object (CloudEvents structured mode)")
    if value.get("specversion") != "1.0":
        raise InvalidRequest(
            f"specversion must be '1.0', got {value.get('specversion')!r}", expression=("specversion",)
        )
    for name in ("id", "source", "type"):
        attr = value.get(name)
        if not isinstance(attr, str) or not attr or len(attr) > _MAX_KEY_PART:
            raise InvalidRequest(f"CloudEvents attribute {name!r} must be a non-empty string of at most "
                                 f"{_MAX_KEY_PART} characters", expression=(name,))  # fmt: skip
    if value["type"] not in INBOUND_TYPES:
        raise NotSupported(f"Unknown event type {value['type']!r}", expression=("type",))
    subject = value.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidRequest("CloudEvents attribute 'subject' must be a string", expression=("subject",))
    content_type = value.get("datacontenttype")
    if content_type is not None and str(content_type).split(";")[0].strip() not in (FHIR_JSON, "application/json"):
        raise NotSupported(f"datacontenttype {content_type!r} is not JSON", expression=("datacontenttype",))
    if "data" not in value:
        raise InvalidRequest("The event has no data", expression=("data",))
    return InboundEvent(value["id"], value["source"], value["type"], subject, value["data"])


def outbound(row: OutboxRow, source: str) -> dict[str, Any]:
    """The CloudEvent of an outbox row; its `id` is the row id, so a re-published row keeps its id."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(row.id),
        "source": source,
        "type": row.type,
        "time": instant(row.created),
        "subject": row.subject or "",
        "datacontenttype": FHIR_JSON if row.type != RESOURCE_STORED else "application/json",
        "data": jsonutil.loads(row.data),
    }
    if row.careplan:
        event["careplan"] = row.careplan
    if row.pathway:
        event["pathway"] = row.pathway
    return event


def encode(event: dict[str, Any]) -> bytes:
    return jsonutil.dumps(event)

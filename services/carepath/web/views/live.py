"""What an open page is told when the outbound stream (`carepath:events`) carries a change: server-sent events.

Only the kind of change and ids go out — never names or clinical content: a Task or CarePlan event is a
`change` (the page re-reads itself), `task.overdue` and `alert` are an `alert` (a notification saying only that
a task is overdue). Other events (e.g. an inbound resource echoed out) are not sent, nor events the session's
grants would not let it read (`may_see(resource type, patient id)`, the caller's rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable

PREFIX = "dev.carepath."
ALERTS = frozenset({"dev.carepath.task.overdue", "dev.carepath.alert"})
CHANGES = ("dev.carepath.task.", "dev.carepath.careplan.")


def live_message(raw: bytes | str | None, may_see: Callable[[str, str], bool] = lambda _type, _patient: True
                 ) -> str | None:  # fmt: skip
    """The SSE frame for one outbound CloudEvent (its encoded JSON), or None when the pages do not care."""
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    kind = str(event.get("type", "")) if isinstance(event, dict) else ""
    if kind in ALERTS:
        name = "alert"
    elif kind.startswith(CHANGES):
        name = "change"
    else:
        return None
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    subject = str(event.get("subject") or "")
    patient = subject.split("/")[-1] if subject.startswith("Patient/") else ""
    if not may_see(str(data.get("resourceType") or ""), patient):
        return None
    payload = {"type": kind.removeprefix(PREFIX), "id": str(data.get("id", "")), "patient": patient}
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"

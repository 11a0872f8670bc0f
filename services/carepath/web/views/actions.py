"""What each button of the task page does to the Task: the new version to write through the ordinary update.

Only the resource is computed here; whether the move is allowed is the workflow's state machine's decision on
the update path (the same as a PUT), and its refusal is shown on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carepath.errors import InvalidRequest
from carepath.web.views.fhir import OPEN, Resource

# action -> the status it moves to (None: the status is left alone)
TARGET: dict[str, str | None] = {
    "claim": None, "assign": None, "start": "in-progress", "complete": "completed", "hold": "on-hold",
    "resume": "in-progress", "cancel": "cancelled", "reject": "rejected",
}  # fmt: skip
NEEDS_REASON = frozenset({"hold", "cancel", "reject"})


@dataclass(frozen=True)
class Actor:
    """The signed-in user: a Practitioner reference (their `fhirUser`) and a display name."""

    reference: str
    display: str

    def as_reference(self) -> dict[str, str]:
        return {"reference": self.reference, "display": self.display}


class MissingInput(InvalidRequest):
    """A form field the action needs is empty; `key` is the message to show (translated by the page)."""

    def __init__(self, key: str, action: str) -> None:
        super().__init__(f"{action}: {key}")
        self.key, self.action = key, action


def offered(task: Resource) -> list[str]:
    """The buttons shown for a Task's status; any other move can still be posted and is then refused by the
    state machine with its own explanation."""
    status = str(task.get("status", ""))
    if status not in OPEN:
        return []
    moves = ["claim", "assign"]
    if status in ("requested", "received", "accepted", "ready"):
        moves += ["start", "hold"] + (["reject"] if status in ("requested", "received") else [])
    elif status == "in-progress":
        moves += ["complete", "hold"]
    elif status == "on-hold":
        moves += ["resume"]
    return [*moves, "cancel"]


def changed_task(task: Resource, action: str, form: Mapping[str, str], actor: Actor, now: datetime) -> Resource:
    """The Task after `action` with the form's reason/note/owner. Raises MissingInput or InvalidRequest."""
    if action not in TARGET:
        raise InvalidRequest(f"Unknown action {action!r}", expression=("action",))
    reason_text = (form.get("reason") or "").strip()
    note_text = (form.get("note") or "").strip()
    if action in NEEDS_REASON and not reason_text:
        raise MissingInput("error.reason_required", action)
    body: dict[str, Any] = {k: v for k, v in task.items() if k != "meta"}
    stamp = now.isoformat(timespec="seconds")
    if action == "claim":
        body["owner"] = actor.as_reference()
    elif action == "assign":
        owner = (form.get("owner") or "").strip()
        if not owner:
            raise MissingInput("error.owner_required", action)
        body["owner"] = {"reference": f"Practitioner/{owner}"}
    target = TARGET[action]
    if target is not None:
        body["status"] = target
    if reason_text:
        body["statusReason"] = {"text": reason_text}
    elif target is not None:
        body.pop("statusReason", None)  # the reason of an earlier hold does not explain this move
    if note_text:
        body["note"] = [*task.get("note", []), {"authorReference": actor.as_reference(), "time": stamp,
                                                 "text": note_text}]  # fmt: skip
    body["lastModified"] = stamp
    return body

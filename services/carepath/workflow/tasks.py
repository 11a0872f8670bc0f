"""Small readers of a Task's JSON shared by the workflow rules (R4 Task, plus carepath's extensions)."""

from __future__ import annotations

from typing import Any

from carepath.canonical import extension_url

Resource = dict[str, Any]

GENERATED_BY = extension_url("generated-by")
WAITS_FOR = extension_url("task-waits-for")
HELD_FROM = extension_url("task-held-from")

# R4 task-status: these end a Task's life; nothing moves out of them except to entered-in-error.
FINAL = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})
OPEN = frozenset({"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"})


def reference(task: Resource) -> str:
    return f"Task/{task['id']}"


def status(task: Resource) -> str:
    return str(task.get("status", ""))


def waits_for(task: Resource) -> list[str]:
    """The `Task/<id>` references of the `task-waits-for` extensions, in order."""
    return [
        str(ext["valueReference"]["reference"])
        for ext in task.get("extension", [])
        if ext.get("url") == WAITS_FOR and isinstance((ext.get("valueReference") or {}).get("reference"), str)
    ]


def generated_by(task: Resource, part: str) -> list[str]:
    """The string values of one part (`actionId`, `condition`, ...) of the `generated-by` extension."""
    return [
        str(sub.get("valueString"))
        for ext in task.get("extension", [])
        if ext.get("url") == GENERATED_BY
        for sub in ext.get("extension", [])
        if sub.get("url") == part and isinstance(sub.get("valueString"), str)
    ]


def label(task: Resource) -> str:
    return str(task.get("description") or (task.get("code") or {}).get("text") or reference(task))


def careplans(task: Resource) -> list[str]:
    """The CarePlans a Task is based on (`Task.basedOn` references to a CarePlan)."""
    refs = [b.get("reference") for b in task.get("basedOn", []) if isinstance(b, dict)]
    return [r for r in refs if isinstance(r, str) and r.startswith("CarePlan/")]


def without_extension(resource: Resource, url: str) -> Resource:
    """A copy of `resource` without the extensions of `url` (the element dropped when none is left)."""
    out = dict(resource)
    kept = [ext for ext in resource.get("extension", []) if ext.get("url") != url]
    if kept:
        out["extension"] = kept
    else:
        out.pop("extension", None)
    return out


def with_note(resource: Resource, text: str) -> Resource:
    return {**resource, "note": [*resource.get("note", []), {"text": text}]}

"""The task page as values: why the Task exists, what it waits for and what waits for it, its status history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from carepath.web.views.fhir import FINAL, Resource, concept_text, generated_by, label, parse_instant, waits_for


@dataclass(frozen=True)
class Link:
    task_id: str
    title: str
    status: str


@dataclass(frozen=True)
class Change:
    """One status change: the version that made it, when, by whom (Provenance) and why."""

    version: str
    when: datetime | None
    status: str
    who: str
    why: str


@dataclass(frozen=True)
class Reason:
    plan: str
    step_id: str
    step_title: str
    conditions: tuple[str, ...]
    notes: tuple[str, ...]


def reason(task: Resource) -> Reason:
    """The step's own conditions, from `generated-by`, and the notes (the first is the generated explanation)."""
    return Reason(
        plan=next(iter(generated_by(task, "plan")), ""),
        step_id=next(iter(generated_by(task, "actionId")), ""),
        step_title=next(iter(generated_by(task, "actionTitle")), ""),
        conditions=tuple(generated_by(task, "condition")),
        notes=tuple(str(n.get("text", "")) for n in task.get("note", []) if n.get("text")),
    )


def predecessors(task: Resource, tasks: Mapping[str, Resource]) -> list[Link]:
    """What this Task waits for (its `task-waits-for` links), as far as they can be read."""
    out = []
    for ref in waits_for(task):
        other = tasks.get(ref)
        out.append(
            Link(ref.split("/")[-1], label(other) if other else ref, str(other.get("status", "")) if other else "")
        )
    return out


def dependants(task: Resource, siblings: list[Resource]) -> list[Link]:
    """The Tasks (of the same plan) whose `task-waits-for` names this one."""
    ref = f"Task/{task['id']}"
    return [Link(str(o["id"]), label(o), str(o.get("status", ""))) for o in siblings if ref in waits_for(o)]


def history(versions: list[Resource], provenances: list[Resource]) -> list[Change]:
    """Status changes, oldest first: the first version and every version whose status differs from the one
    before. `who`/`why` come from a Provenance targeting that version, else the Task's own statusReason."""
    by_version: dict[str, Resource] = {}
    for prov in provenances:
        for target in prov.get("target", []):
            ref = str(target.get("reference", ""))
            if "/_history/" in ref:
                by_version[ref.rsplit("/", 1)[1]] = prov
    out: list[Change] = []
    previous: str | None = None
    for version in sorted(versions, key=lambda v: int((v.get("meta") or {}).get("versionId", "0"))):
        status = str(version.get("status", ""))
        if status == previous:
            continue
        previous = status
        number = str((version.get("meta") or {}).get("versionId", ""))
        source = by_version.get(number, {})
        who = ", ".join(str((a.get("who") or {}).get("display") or (a.get("who") or {}).get("reference") or "")
                        for a in source.get("agent", [])).strip(", ")  # fmt: skip
        why = "; ".join(concept_text(r) for r in source.get("reason", [])) or concept_text(version.get("statusReason"))
        when = parse_instant((version.get("meta") or {}).get("lastUpdated"))
        out.append(Change(number, when, status, who, why))
    return out


def is_closed(task: Resource) -> bool:
    return str(task.get("status", "")) in FINAL

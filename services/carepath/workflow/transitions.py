"""carepath's Task state machine (README, "Task workflow"): which status changes an update may make.

R4 draws the Task life cycle only as a figure (Task §12.1.3.1); carepath writes it down as a table and refuses
every other move. One documented extension: R4's `on-hold` means "started but paused", but the pathway's
refusal stop rule must also pause Tasks that have not started (draft, requested, ready). Such a hold records the
state it came from in the `task-held-from` extension, and the Task resumes to that state (or to in-progress).
Any state may go to entered-in-error; a Task keeping its status is not a transition. No move needs an owner.
"""

from __future__ import annotations

from carepath.errors import InvalidTransition
from carepath.workflow.tasks import FINAL, HELD_FROM, Resource, status, without_extension

ALLOWED: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "ready", "cancelled"}),
    "requested": frozenset({"received", "accepted", "ready", "in-progress", "rejected", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in-progress", "cancelled"}),
    "ready": frozenset({"in-progress", "cancelled"}),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "cancelled"}),  # and the state it was held from
    **{final: frozenset() for final in FINAL},
}
HOLDABLE_BEFORE_START = frozenset({"draft", "requested", "ready"})  # the carepath extension to R4's on-hold


def held_from(task: Resource) -> str | None:
    """The state an on-hold Task resumes to (absent: it was in progress, R4's own meaning of on-hold)."""
    return next((str(e.get("valueCode")) for e in task.get("extension", []) if e.get("url") == HELD_FROM), None)


def allowed(before: str, after: str, resumes_to: str | None = None) -> bool:
    """Whether `before` -> `after` is in the table; `resumes_to` is the held-from state of an on-hold Task."""
    if before == after or after == "entered-in-error":
        return True
    if after == "on-hold" and before in HOLDABLE_BEFORE_START:
        return True
    return after in ALLOWED.get(before, frozenset()) or (before == "on-hold" and after == resumes_to)


def settle(before: Resource, after: Resource) -> Resource:
    """`after` as it must be stored, given the stored `before`: a move outside the table is refused (422,
    naming both states); entering on-hold records where it came from, leaving it forgets that."""
    old, new = status(before), status(after)
    if not allowed(old, new, held_from(before)):
        resume = f" or back to {held_from(before)}" if old == "on-hold" and held_from(before) else ""
        options = ", ".join(sorted(ALLOWED.get(old, frozenset()))) + resume
        then = f"it may go to {options} or entered-in-error" if options else "it is final: only entered-in-error"
        raise InvalidTransition(
            f"Task/{before.get('id')} cannot go from {old!r} to {new!r}; from {old!r} {then}",
            expression=("Task.status",),
        )
    cleared = without_extension(after, HELD_FROM)
    if new != "on-hold":
        return cleared
    origin = held_from(before) if old == "on-hold" else (old if old != "in-progress" else None)
    if origin is None:
        return cleared
    return {**cleared, "extension": [*cleared.get("extension", []), {"url": HELD_FROM, "valueCode": origin}]}

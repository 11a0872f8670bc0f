"""CarePlan roll-up: the CarePlan's status follows its Tasks; its RequestGroup follows the CarePlan.

- `revoked` when the pathway is stopped (the death stop rule): R4 CarePlan "revoked" = terminated early.
- `completed` when every counted Task is completed or cancelled. Counted: the Tasks of actions whose
  `requiredBehavior` is `must` when the RequestGroup marks any, else every Task of the CarePlan; entered-in-error
  Tasks never count (they never existed). A failed Task keeps the plan active: someone has to look at it.
- R4 RequestGroup actions have no status: progress is read from the Tasks, and `RequestGroup.status` is the
  CarePlan's (both use request-status codes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from carepath.workflow.tasks import Resource, generated_by, status

ROLLING = frozenset({"active", "on-hold"})  # a CarePlan in another state is not changed by its Tasks


def must_actions(request_group: Resource) -> frozenset[str]:
    """The ids of the RequestGroup's actions (at any depth) with requiredBehavior = must."""

    def walk(actions: Iterable[Resource]) -> Iterable[str]:
        for action in actions:
            if action.get("requiredBehavior") == "must" and isinstance(action.get("id"), str):
                yield action["id"]
            yield from walk(action.get("action", []))

    return frozenset(walk(request_group.get("action", [])))


def rolled_up_status(
    careplan: Resource, tasks: Sequence[Resource], must: frozenset[str], *, stopped: bool = False
) -> str | None:
    """The CarePlan's new status, or None when it stays as it is."""
    if careplan.get("status") not in ROLLING:
        return None
    if stopped:
        return "revoked"
    counted = [t for t in tasks if status(t) != "entered-in-error"]
    if must:
        counted = [t for t in counted if set(generated_by(t, "actionId")) & must]
    if counted and all(status(t) in ("completed", "cancelled") for t in counted):
        return "completed"
    return None

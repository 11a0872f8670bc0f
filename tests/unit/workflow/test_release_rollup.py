"""Dependency release and CarePlan roll-up as pure rules (workflow/release.py, workflow/rollup.py)."""

from __future__ import annotations

from typing import Any

from carepath.workflow.release import decide_release
from carepath.workflow.rollup import must_actions, rolled_up_status
from carepath.workflow.tasks import GENERATED_BY, WAITS_FOR


def task(task_id: str, status: str, *, waits: tuple[str, ...] = (), action: str | None = None,
         **extra: Any) -> dict[str, Any]:  # fmt: skip
    extensions: list[dict[str, Any]] = [{"url": WAITS_FOR, "valueReference": {"reference": f"Task/{w}"}} for w in waits]
    if action:
        extensions.append({"url": GENERATED_BY, "extension": [{"url": "actionId", "valueString": action}]})
    out = {"resourceType": "Task", "id": task_id, "status": status, "description": f"step {task_id}", **extra}
    return {**out, "extension": extensions} if extensions else out


HELD = task("d", "draft", waits=("a", "b"), businessStatus={"text": "waiting for: step a, step b"})


def test_release_waits_until_the_last_predecessor_completes() -> None:
    assert decide_release(HELD, {"Task/a": task("a", "completed"), "Task/b": task("b", "in-progress")}) is None
    done = decide_release(HELD, {"Task/a": task("a", "completed"), "Task/b": task("b", "completed")})
    assert done is not None and done.kind == "released"
    assert done.task["status"] == "requested" and "businessStatus" not in done.task


def test_a_task_with_an_owner_is_released_ready() -> None:
    owned = {**HELD, "owner": {"reference": "Practitioner/p1"}}
    done = decide_release(owned, {"Task/a": task("a", "completed"), "Task/b": task("b", "completed")})
    assert done is not None and done.task["status"] == "ready"


def test_a_cancelled_or_failed_predecessor_holds_the_dependant_for_review() -> None:
    for ending in ("cancelled", "failed"):
        decision = decide_release(HELD, {"Task/a": task("a", ending), "Task/b": task("b", "completed")})
        assert decision is not None and decision.kind == "review"
        assert decision.task["status"] == "draft"
        assert decision.task["businessStatus"]["text"] == (
            f"held for care coordinator review: step a ({ending}) did not complete"
        )
        assert "did not complete" in decision.task["note"][-1]["text"]
        # Deciding again changes nothing (no second note, no new version).
        assert decide_release(decision.task, {"Task/a": task("a", ending), "Task/b": task("b", "completed")}) is None


def test_only_held_drafts_are_released() -> None:
    done = {"Task/a": task("a", "completed"), "Task/b": task("b", "completed")}
    assert decide_release({**HELD, "status": "on-hold"}, done) is None
    assert decide_release(task("x", "draft"), done) is None


PLAN = {"resourceType": "CarePlan", "id": "cp", "status": "active"}


def test_rollup_completes_when_every_task_is_completed_or_cancelled() -> None:
    tasks = [task("a", "completed"), task("b", "cancelled"), task("c", "entered-in-error")]
    assert rolled_up_status(PLAN, tasks, frozenset()) == "completed"
    assert rolled_up_status(PLAN, [*tasks, task("d", "failed")], frozenset()) is None
    assert rolled_up_status(PLAN, [*tasks, task("d", "requested")], frozenset()) is None
    assert rolled_up_status(PLAN, [], frozenset()) is None


def test_rollup_counts_only_must_actions_when_any_is_marked() -> None:
    group = {"action": [{"id": "S05", "requiredBehavior": "must"}, {"id": "S07", "action": [{"id": "S07b"}]}]}
    must = must_actions(group)
    assert must == {"S05"}
    tasks = [task("a", "completed", action="S05"), task("b", "requested", action="S07")]
    assert rolled_up_status(PLAN, tasks, must) == "completed"
    assert rolled_up_status(PLAN, tasks, frozenset()) is None


def test_rollup_revokes_a_stopped_pathway_and_leaves_finished_plans_alone() -> None:
    assert rolled_up_status(PLAN, [task("a", "cancelled")], frozenset(), stopped=True) == "revoked"
    assert rolled_up_status({**PLAN, "status": "completed"}, [], frozenset(), stopped=True) is None

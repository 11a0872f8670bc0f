"""Dependency release: a held Task (draft + `task-waits-for`) becomes actionable when what it waits for is done.

- Every awaited Task completed: the Task becomes `ready` when it has an owner, else `requested` (someone must
  still accept it), and its businessStatus "waiting for: ..." is cleared.
- Every awaited Task finished, but one of them cancelled, failed, rejected or entered in error: the Task is **held
  for the care coordinator's review** (it stays `draft`, with a businessStatus and a note saying which
  predecessor did not complete). Releasing it anyway could start work whose premise is gone (an RCP review
  without the imaging it was waiting for), and cancelling it would drop work silently; a person decides.
- Otherwise it keeps waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from carepath.workflow.tasks import FINAL, Resource, label, status, waits_for, with_note

REVIEW_PREFIX = "held for care coordinator review"


@dataclass(frozen=True)
class Release:
    """The new content of a dependant: `released` (now actionable) or `review` (held for a person to decide)."""

    kind: Literal["released", "review"]
    task: Resource


def decide_release(task: Resource, predecessors: Mapping[str, Resource | None]) -> Release | None:
    """What becomes of `task` given its awaited Tasks (by `Task/<id>`; None = not found, counts as not done)."""
    awaited = waits_for(task)
    if status(task) != "draft" or not awaited:
        return None
    found = [predecessors.get(ref) for ref in awaited]
    if any(p is not None and status(p) not in FINAL for p in found):
        return None  # still waiting
    if all(p is not None and status(p) == "completed" for p in found):
        released = {k: v for k, v in task.items() if k != "businessStatus"}
        released["status"] = "ready" if task.get("owner") else "requested"
        return Release("released", released)
    missed = [f"{label(p)} ({status(p)})" if p is not None else f"{ref} (not found)"
              for ref, p in zip(awaited, found, strict=True) if p is None or status(p) != "completed"]  # fmt: skip
    text = f"{REVIEW_PREFIX}: {', '.join(missed)} did not complete"
    if (task.get("businessStatus") or {}).get("text") == text:
        return None  # already held for review for the same reason
    held = with_note({**task, "businessStatus": {"text": text}},
                     f"Not released: {', '.join(missed)} did not complete. The care coordinator decides whether "
                     "this step still makes sense (move it to requested or ready) or cancels it.")  # fmt: skip
    return Release("review", held)

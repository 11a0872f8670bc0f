"""carepath's Task state table as the issue writes it, independently of the implementation's table, shared by
the pure tests (tests/unit/workflow) and the HTTP tests (tests/integration) that check it edge by edge."""

from __future__ import annotations

import itertools

STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold", "completed",
            "cancelled", "failed", "rejected", "entered-in-error")  # fmt: skip
TABLE = {
    "draft": {"requested", "ready", "cancelled", "on-hold"},
    "requested": {"received", "accepted", "ready", "in-progress", "rejected", "cancelled", "on-hold"},
    "received": {"accepted", "rejected", "cancelled"},
    "accepted": {"in-progress", "cancelled"},
    "ready": {"in-progress", "cancelled", "on-hold"},
    "in-progress": {"on-hold", "completed", "failed", "cancelled"},
    "on-hold": {"in-progress", "cancelled"},  # + the state it was held from (tested separately)
}
EDGES = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]


def expected(before: str, after: str) -> bool:
    """Whether the table allows `before` -> `after` (any state may go to entered-in-error)."""
    return after == "entered-in-error" or after in TABLE.get(before, set())

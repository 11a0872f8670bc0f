"""Who is making the current request, for the Provenance of what it changes.

A transport that knows the caller (the auth layer, from its token) sets `request_agent` for the duration of the
request; every workflow change then names that agent. Until authentication exists (CAREPATH_AUTH=off), and for
work nobody asked for (the scheduler), the author is carepath's own system agent.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

SYSTEM_AGENT: dict[str, Any] = {"display": "carepath (system; no authenticated user)"}

request_agent: ContextVar[dict[str, Any] | None] = ContextVar("request_agent", default=None)


def current_agent() -> dict[str, Any]:
    """The Reference to name as the author of a change: the request's agent, else the system agent."""
    return request_agent.get() or SYSTEM_AGENT

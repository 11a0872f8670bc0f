"""What a worklist session may see and do: the API's own rules (`auth.access.decide`) applied to the session's
grants, per page, per live event, and to what is recorded in the audit trail.

Each page declares the reads (and the action its writes) it makes, as scope needs; a session whose grants miss
any of them gets a 403 page. A `patient/` session (a launch context) sees its own patient's page and tasks
only: the worklist spans patients, so it needs user/ or system/ grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from carepath.auth.access import Decision, Need, decide
from carepath.auth.audit import Request as AuditRequest
from carepath.auth.audit import access_event
from carepath.auth.scopes import Letter, parse_scopes
from carepath.auth.tokens import Principal
from carepath.web.session import Session

PageName = Literal["worklist", "task", "action", "patient", "live"]


def _needs(*pairs: tuple[str, Letter]) -> tuple[Need, ...]:
    return tuple(Need(res_type, letter) for res_type, letter in pairs)


# What each page reads (web.data) or writes; definitions (PlanDefinition, ActivityDefinition) come with any read.
PAGE_NEEDS: dict[PageName, tuple[Need, ...]] = {
    "worklist": _needs(("Task", "s"), ("Patient", "s"), ("Practitioner", "s")),
    "task": _needs(("Task", "r"), ("Task", "s"), ("Patient", "r"), ("Practitioner", "r"), ("Practitioner", "s"),
                   ("CarePlan", "r"), ("Provenance", "s")),
    "action": _needs(("Task", "r"), ("Task", "u")),
    "patient": _needs(("Patient", "r"), ("CarePlan", "s"), ("Task", "s")),
    "live": _needs(("Task", "r")),  # each event is then checked on its own (may_see_event)
}  # fmt: skip


def principal(session: Session, issuer: str, client_id: str) -> Principal:
    """The session as the API's rules see a caller: the signed-in Practitioner with the token's grants."""
    user = session.user.reference
    return Principal(subject=user, client_id=client_id, issuer=issuer, grants=parse_scopes(session.scope),
                     patient=session.patient, fhir_user=user)  # fmt: skip


def page_decision(caller: Principal, page: PageName) -> Decision | None:
    """None: the grants do not allow the page; "patient": only for the session's own patient."""
    return decide(caller, PAGE_NEEDS[page])


def may_show(caller: Principal, decision: Decision | None, patient: str | None) -> bool:
    """Whether a page under `decision` may show `patient`'s data (None: a page spanning patients)."""
    return decision == "full" or (decision == "patient" and patient is not None and patient == caller.patient)


def may_see_event(caller: Principal, res_type: str, patient: str) -> bool:
    """A live event about a resource of `res_type` for `patient`: sent only if the session could read it."""
    return bool(res_type) and may_show(caller, decide(caller, (Need(res_type, "r"),)), patient or None)


def page_event(
    caller: Principal, address: str, interaction: str, res_type: str, *, touched: Iterable[str],
    patients: Iterable[str], status: int, source: str,
) -> dict[str, Any]:  # fmt: skip
    """The AuditEvent of a page shown (a read or search) or an action taken (an update), as for the API."""
    request = AuditRequest(address, interaction, res_type, status)
    return access_event(request, caller, touched=touched, patients=[p for p in patients if p], source=source)

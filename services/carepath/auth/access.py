"""What an HTTP request to the FHIR API asks to do, as scope needs, and whether a token's grants allow it.

`classify` maps method + path (after `/fhir`) to an `Access` without touching the database; anything it does
not recognise is `unknown` and refused in the secured modes (deny by default: a new route cannot be open by
accident). `decide` answers "full" (system/user scopes, or definitions with any read scope), "patient" (allowed
only inside the token's patient compartment) or None (insufficient scope). The worklist (`/app`) is `app`: no
bearer token but a session cookie, which its own routes check with the same `decide` (carepath.web.guard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

from carepath.auth.compartment import DEFINITION_TYPES, in_compartment
from carepath.auth.scopes import Letter
from carepath.auth.tokens import Principal
from carepath.fhir.models import SUPPORTED_TYPES, is_supported

Kind = Literal["open", "app", "rest", "bundle", "apply", "unknown"]
Decision = Literal["full", "patient"]

# Stored results of $apply with persist=true (issue 13).
APPLY_PERSISTED_TYPES = ("CarePlan", "RequestGroup", "Task", "ServiceRequest", "CommunicationRequest",
                         "MedicationRequest", "Goal", "Provenance")  # fmt: skip
# Never through the API: an audit trail that can be edited proves nothing.
IMMUTABLE_TYPES = frozenset({"AuditEvent"})
_OPEN = frozenset({"metadata", ".well-known/smart-configuration", "$versions"})
# Instance operations other than $apply: (type, operation) -> the methods served and the letter they need.
# $data-requirements reads a definition; $status reads a Subscription; $resend changes its delivery state.
_INSTANCE_OPERATIONS: dict[tuple[str, str], tuple[frozenset[str], Letter]] = {
    ("PlanDefinition", "$data-requirements"): (frozenset({"GET"}), "r"),
    ("Subscription", "$status"): (frozenset({"GET", "POST"}), "r"),
    ("Subscription", "$resend"): (frozenset({"POST"}), "u"),
}


@dataclass(frozen=True)
class Need:
    res_type: str
    letter: Letter


@dataclass(frozen=True)
class Access:
    kind: Kind
    interaction: str = ""  # the http://hl7.org/fhir/restful-interaction code (for audit)
    res_type: str | None = None
    res_id: str | None = None
    needs: tuple[Need, ...] = ()
    query: tuple[tuple[str, str], ...] = field(default=())

    @property
    def immutable_violation(self) -> bool:
        return self.res_type in IMMUTABLE_TYPES and self.interaction in ("update", "patch", "delete")


def classify(method: str, path: str, query_string: str = "", headers_conditional: bool = False) -> Access:
    """`path` is the request path; only paths under /fhir are FHIR API paths. HEAD is GET without a body."""
    method = "GET" if method == "HEAD" else method
    if path == "/app" or path.startswith("/app/"):
        return Access("app")
    if path != "/fhir" and not path.startswith("/fhir/"):
        return Access("open") if path in ("/healthz", "/readyz", "/livez") else Access("unknown")
    rest = path[len("/fhir") :].strip("/")
    if rest in _OPEN and method == "GET":
        return Access("open", "capabilities")
    query = tuple(parse_qsl(query_string, keep_blank_values=True))
    return classify_relative(method, rest, query, conditional=headers_conditional)


def classify_relative(
    method: str, rest: str, query: tuple[tuple[str, str], ...] = (), *, conditional: bool = False
) -> Access:
    """The same for a URL relative to the FHIR base, as in Bundle.entry.request.url."""
    parts = [p for p in rest.split("/") if p] if rest else []
    if not parts:
        if method == "POST":
            return Access("bundle", "batch")
        return Access("unknown")
    if parts[0] == "_history" and len(parts) == 1 and method == "GET":
        return Access("rest", "history-system", needs=tuple(Need(t, "s") for t in SUPPORTED_TYPES), query=query)
    res_type = parts[0]
    if not is_supported(res_type):
        return Access("unknown")
    if len(parts) >= 2 and parts[-1] == "$apply" and res_type in ("PlanDefinition", "ActivityDefinition"):
        res_id = parts[1] if len(parts) == 3 else None
        if method in ("GET", "POST") and len(parts) in (2, 3):
            return Access("apply", "operation", res_type, res_id, query=query)
        return Access("unknown")
    if len(parts) == 3 and (res_type, parts[2]) in _INSTANCE_OPERATIONS:
        methods, letter = _INSTANCE_OPERATIONS[(res_type, parts[2])]
        if method not in methods or parts[1].startswith(("$", "_")):
            return Access("unknown")
        return Access("rest", "operation", res_type, parts[1], (Need(res_type, letter),), query)
    return _rest(method, res_type, parts[1:], query, conditional)


def _rest(method: str, res_type: str, tail: list[str], query: tuple[tuple[str, str], ...], conditional: bool) -> Access:
    def access(interaction: str, *letters: Letter, res_id: str | None = None) -> Access:
        extra: tuple[Letter, ...] = ("s",) if conditional and "s" not in letters else ()
        needs = tuple(Need(res_type, letter) for letter in (*letters, *extra))
        return Access("rest", interaction, res_type, res_id, needs, query)

    if not tail:
        if method == "GET":
            return access("search-type", "s")
        if method == "POST":
            return access("create", "c")
        if method in ("PUT", "PATCH", "DELETE"):  # conditional update/patch/delete by search criteria
            letter: Letter = {"PUT": "u", "PATCH": "u", "DELETE": "d"}[method]  # type: ignore[assignment]
            return access({"PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method], letter, "s")
        return Access("unknown")
    if tail == ["_search"] and method == "POST":
        return access("search-type", "s")
    if tail == ["_history"] and method == "GET":
        return access("history-type", "s")
    res_id = tail[0]
    if res_id.startswith(("$", "_")):
        return Access("unknown")
    if len(tail) == 1:
        by_method: dict[str, tuple[str, Letter]] = {
            "GET": ("read", "r"), "PUT": ("update", "u"), "PATCH": ("patch", "u"), "DELETE": ("delete", "d"),
        }  # fmt: skip
        if method in by_method:
            interaction, letter = by_method[method]
            return access(interaction, letter, res_id=res_id)
        return Access("unknown")
    if tail[1] == "_history" and method == "GET" and len(tail) in (2, 3):
        return access("history-instance" if len(tail) == 2 else "vread", "r", res_id=res_id)
    return Access("unknown")


def grant_for(principal: Principal, need: Need) -> Decision | None:
    grants = principal.grants
    for grant in grants:
        if grant.letter == need.letter and grant.res_type in (need.res_type, "*") and grant.context != "patient":
            return "full"
    if need.res_type in DEFINITION_TYPES and need.letter in ("r", "s") and any(g.letter == "r" for g in grants):
        return "full"
    if principal.patient and in_compartment(need.res_type):
        for grant in grants:
            if grant.context == "patient" and grant.letter == need.letter and grant.res_type in (need.res_type, "*"):
                return "patient"
    return None


def decide(principal: Principal, needs: tuple[Need, ...] | list[Need]) -> Decision | None:
    """All needs must be granted; the answer is "patient" when any of them is granted only inside the
    compartment."""
    decisions = [grant_for(principal, need) for need in needs]
    if not decisions or any(d is None for d in decisions):
        return None
    return "patient" if "patient" in decisions else "full"

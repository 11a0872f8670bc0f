"""The one error hierarchy. Each class knows its HTTP status and its OperationOutcome issue code.

CarepathError                      500 exception   (never raised for a client's mistake)
├── InvalidRequest                 400 invalid     malformed JSON, bad search parameter
│   └── InvalidResource            400 invalid     resource fails validation (expression names the element)
├── Unauthorized                   401 login       no or an invalid access token (WWW-Authenticate added)
│   └── SignInFailed               401 login       the worklist's sign-in refused (state, code or ID token)
├── Forbidden                      403 forbidden   a valid token without the scope for the interaction
├── NotFound                       404 not-found
├── MethodNotAllowed               405 not-supported
├── Conflict                       409 conflict    id mismatch
│   └── TransactionConflict        409 conflict    deadlock / serialization failure / concurrent create
│                                                  (retryable: service.transactions retries the unit of work)
├── Gone                           410 deleted
├── PreconditionFailed             412 conflict    If-Match mismatch, several conditional matches
├── PayloadTooLarge                413 too-long
├── UnsupportedMediaType           415 not-supported
├── BusinessRuleViolation          422 business-rule
│   └── InvalidTransition          422 business-rule  a Task status change the workflow's table does not allow
├── NotSupported                   422 not-supported  e.g. a CQL expression in a PlanDefinition
├── TooCostly                      422 too-costly  an `$apply` over its FHIRPath evaluation time limit
├── TooManyRequests                429 throttled   a client over a request or failed-authentication limit
└── IssuerUnavailable              502 transient   the sign-in's OpenID provider did not answer usefully
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    diagnostics: str
    code: str = "invalid"
    severity: Severity = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class CarepathError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "exception"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: tuple[str, ...] | list[str] = (),
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = tuple(expression)
        self.extra_issues = list(issues or [])

    def issues(self) -> list[Issue]:
        """The issues to render: the main one first, then any others (e.g. every invalid element)."""
        head = [Issue(self.diagnostics, self.code, "error", self.expression)] if self.diagnostics else []
        return head + self.extra_issues


class InvalidRequest(CarepathError):
    status, code = 400, "invalid"


class InvalidResource(InvalidRequest):
    pass


class Unauthorized(CarepathError):
    """RFC 6750 §3: `error` is "invalid_token" when a token was sent, None when none was."""

    status, code = 401, "login"

    def __init__(self, diagnostics: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(diagnostics)
        self.error = error


class SignInFailed(Unauthorized):
    """The worklist's sign-in did not complete: a stale or forged state, a refused code, a bad ID token."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics, error=None)


class Forbidden(CarepathError):
    status, code = 403, "forbidden"


class NotFound(CarepathError):
    status, code = 404, "not-found"


class MethodNotAllowed(CarepathError):
    status, code = 405, "not-supported"


class Conflict(CarepathError):
    status, code = 409, "conflict"


class TransactionConflict(Conflict):
    """The database aborted the unit of work because of a concurrent one; running it again may succeed."""

    retryable = True


class NotAcceptable(CarepathError):
    status, code = 406, "not-supported"


class Gone(CarepathError):
    status, code = 410, "deleted"


class PreconditionFailed(CarepathError):
    status, code = 412, "conflict"


class PayloadTooLarge(CarepathError):
    status, code = 413, "too-long"


class UnsupportedMediaType(CarepathError):
    status, code = 415, "not-supported"


class BusinessRuleViolation(CarepathError):
    status, code = 422, "business-rule"


class InvalidTransition(BusinessRuleViolation):
    """A Task status change outside carepath's state table (README, "Task workflow"); names both states."""


class NotSupported(CarepathError):
    status, code = 422, "not-supported"


class TooCostly(CarepathError):
    status, code = 422, "too-costly"


class TooManyRequests(CarepathError):
    status, code = 429, "throttled"


class IssuerUnavailable(CarepathError):
    status, code = 502, "transient"
    retryable = True


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}

"""The one error hierarchy. Each class knows its HTTP status and its OperationOutcome issue code.

CarepathError                      500 exception   (never raised for a client's mistake)
├── InvalidRequest                 400 invalid     malformed JSON, bad search parameter
│   └── InvalidResource            400 invalid     resource fails validation (expression names the element)
├── NotFound                       404 not-found
├── MethodNotAllowed               405 not-supported
├── Conflict                       409 conflict    id mismatch, a concurrent create-on-update
├── Gone                           410 deleted
├── PreconditionFailed             412 conflict    If-Match mismatch, several conditional matches
├── PayloadTooLarge                413 too-long
├── UnsupportedMediaType           415 not-supported
├── BusinessRuleViolation          422 business-rule
│   └── InvalidTransition          422 business-rule  a Task status change the workflow's table does not allow
└── NotSupported                   422 not-supported  e.g. a CQL expression in a PlanDefinition
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


class NotFound(CarepathError):
    status, code = 404, "not-found"


class MethodNotAllowed(CarepathError):
    status, code = 405, "not-supported"


class Conflict(CarepathError):
    status, code = 409, "conflict"


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


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}

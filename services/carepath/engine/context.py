"""The engine's inputs and outputs: what `$apply` is given (ApplyContext, a resolver) and what it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from carepath.errors import InvalidRequest, Issue, TooCostly
from carepath.fhir.versions import version_key

DEFINITION_TYPES = ("ActivityDefinition", "PlanDefinition", "Questionnaire")


class DefinitionResolver(Protocol):
    def resolve(self, canonical: str) -> dict[str, Any] | None:
        """`url` or `url|version` -> the ActivityDefinition / PlanDefinition / Questionnaire, or None."""
        ...


class DictResolver:
    """An in-memory resolver over a list of definitions; an unversioned canonical gets the highest version."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self._by_url: dict[str, list[dict[str, Any]]] = {}
        for resource in resources:
            url = resource.get("url")
            if isinstance(url, str) and resource.get("resourceType") in DEFINITION_TYPES:
                self._by_url.setdefault(url, []).append(resource)
        for versions in self._by_url.values():
            versions.sort(key=lambda r: version_key(r.get("version")))

    def resolve(self, canonical: str) -> dict[str, Any] | None:
        url, _, version = canonical.partition("|")
        candidates = self._by_url.get(url, [])
        if version:
            return next((r for r in candidates if r.get("version") == version), None)
        return candidates[-1] if candidates else None


@dataclass
class EvaluationBudget:
    """The FHIRPath evaluation time one `$apply` may spend, over all its expressions (and all its subjects).

    Time is an input here too: `clock` (seconds on any monotonic scale) is the caller's — the service passes
    `time.monotonic`, tests a fake — and is called only around each expression evaluation, so only evaluation
    counts, not the caller's I/O. An evaluation in progress is not interrupted (the engine is synchronous): the
    limit is checked before each one.
    """

    limit_ms: int
    clock: Callable[[], float]
    spent_s: float = 0.0

    @contextmanager
    def spend(self, where: str) -> Iterator[None]:
        """TooCostly naming `where` once the limit is spent; else evaluate and add the time it took."""
        if self.spent_s * 1000 >= self.limit_ms:
            raise TooCostly(f"$apply exceeded its FHIRPath evaluation time limit of {self.limit_ms} ms; stopped "
                            f"before evaluating {where}", expression=(where,))  # fmt: skip
        started = self.clock()
        try:
            yield
        finally:
            self.spent_s += self.clock() - started


@dataclass(frozen=True)
class ApplyContext:
    """Everything `$apply` depends on besides the definitions. `now` is an input: the engine never reads the clock."""

    subject: str
    now: datetime
    data: dict[str, Any] | None = None
    encounter: str | None = None
    practitioner: str | None = None
    organization: str | None = None
    user_type: dict[str, Any] | None = None
    user_language: dict[str, Any] | None = None
    user_task_context: dict[str, Any] | None = None
    setting: dict[str, Any] | None = None
    setting_context: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    persist: bool = False  # the result will be stored: its Tasks become the worklist's orders (`action_intent`)
    budget: EvaluationBudget | None = None  # None: no evaluation time limit (the service always sets one)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise InvalidRequest("$apply needs a timezone-aware 'now'")
        if "/" not in self.subject:
            raise InvalidRequest(f"subject must be a reference like 'Patient/123', got {self.subject!r}")


@dataclass
class ApplyResult:
    """A CarePlan whose RequestGroup, requests, Tasks and Goals are contained; issues are warnings, never raised."""

    careplan: dict[str, Any]
    applicable: bool
    issues: list[Issue] = field(default_factory=list)

"""What every generated resource passes before `$apply` returns it (and so before the service stores it): the R4
invariants the models do not check (`fhir.invariants`), then R4 validation itself (`fhir.validation`: the
models, required bindings, JSON kinds, unknown elements — quick for the parts of a definition already seen).

A failure is the content's doing, a 422. When a dynamicValue wrote the element at fault, the error names that
dynamicValue's expression (the last one that wrote there: later ones overwrite earlier ones), so a pathway
author sees which expression gave a wrong type, a bad date or a code outside a required binding; otherwise it
names the element of the generated resource.
"""

from __future__ import annotations

import re
from typing import Any

from carepath.engine.reevaluate import action_id
from carepath.errors import BusinessRuleViolation, InvalidResource, Issue
from carepath.fhir.invariants import invariant_issues
from carepath.fhir.validation import validate_resource

_INDEX = re.compile(r"\[[^\]]*\]")
_CONTAINED = re.compile(r"^[A-Za-z]+\.contained\[(\d+)\]")


def element_names(path: str) -> tuple[str, ...]:
    """`input[0].valueString` -> ("input", "valueString"): the element names of a path, without indices."""
    return tuple(part for part in _INDEX.sub("", path).split(".") if part)


class WriteLog:
    """Which dynamicValue wrote which element of which resource under construction, in order."""

    def __init__(self) -> None:
        self._writes: dict[int, list[tuple[tuple[str, ...], str]]] = {}
        self._resources: list[dict[str, Any]] = []  # keeps each logged resource alive, so its id() stays its own

    def record(self, resource: dict[str, Any], path: str, where: str) -> None:
        names = element_names(path)
        if names and names[0] == resource.get("resourceType"):  # `Task.priority` is `priority`
            names = names[1:]
        if id(resource) not in self._writes:
            self._resources.append(resource)
        self._writes.setdefault(id(resource), []).append((names, where))

    def writer(self, resource: dict[str, Any], names: tuple[str, ...]) -> str | None:
        """The last dynamicValue that wrote `names` of `resource`, an element inside it, or one containing it."""
        for written, where in reversed(self._writes.get(id(resource), [])):
            shorter = min(len(written), len(names))
            if written[:shorter] == names[:shorter]:
                return where
        return None


def check_generated(resource: dict[str, Any], log: WriteLog) -> None:
    """BusinessRuleViolation (422) naming the dynamicValue or the element, unless `resource` is valid R4."""
    issues = invariant_issues(resource)
    if not issues:
        try:
            validate_resource(resource)
        except InvalidResource as exc:
            issues = exc.issues()
    if issues:
        raise _fault(resource, issues, log)


def name_writer(exc: BusinessRuleViolation, resource: dict[str, Any], paths: tuple[str, ...], log: WriteLog) -> None:
    """Give `exc` the dynamicValue that wrote one of `paths` of `resource` as its expression, if one did."""
    where = next((w for p in paths if (w := log.writer(resource, element_names(p))) is not None), None)
    if where is not None and not exc.expression:
        exc.expression = (f"{where}.expression",)


def _fault(resource: dict[str, Any], issues: list[Issue], log: WriteLog) -> BusinessRuleViolation:
    head = issues[0]
    element = head.expression[0] if head.expression else str(resource["resourceType"])
    target, inner = _target(resource, element)
    where = log.writer(target, element_names(inner))
    kind = target.get("resourceType", resource["resourceType"])
    if where is None:
        return BusinessRuleViolation(
            f"Applying the definition produced an invalid {kind}: {head.diagnostics}",
            expression=head.expression, issues=issues[1:],
        )  # fmt: skip
    action = action_id(target)
    return BusinessRuleViolation(
        f"The dynamicValue {where}{f' of action {action!r}' if action else ''} produced an invalid {kind} "
        f"({element}): {head.diagnostics}",
        expression=(f"{where}.expression",), issues=issues,
    )  # fmt: skip


def _target(resource: dict[str, Any], element: str) -> tuple[dict[str, Any], str]:
    """The (possibly contained) resource an issue's path points into, and the path inside it."""
    match = _CONTAINED.match(element)
    contained = resource.get("contained")
    if match and isinstance(contained, list) and int(match[1]) < len(contained):
        return contained[int(match[1])], element[match.end() :]
    return resource, element.partition(".")[2]

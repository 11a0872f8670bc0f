"""The resources `$apply` is given inline, checked before anything uses them, exactly as a PUT/POST checks them.

An inline `planDefinition` / `activityDefinition`, the `parameters` resource and every resource of the `data`
Bundle are validated like stored resources (`validate_resource`): a 400 naming the element, instead of content
that is applied (and echoed into the result) although the server would refuse to store it. A `data` entry's
issues name it as `Bundle.entry[i].resource...`.
"""

from __future__ import annotations

from typing import Any

from carepath.errors import InvalidRequest, InvalidResource, Issue
from carepath.fhir.validation import validate_resource
from carepath.service.parameters import OperationInput

_RESOURCES = {"planDefinition": "PlanDefinition", "activityDefinition": "ActivityDefinition",
              "parameters": "Parameters", "data": "Bundle"}  # fmt: skip


def check_inputs(inputs: OperationInput) -> None:
    """Raise a 400 naming the element for the first resource-valued parameter that is not a valid resource."""
    for name, resource_type in _RESOURCES.items():
        for value in inputs.all(name):
            if not isinstance(value, dict) or value.get("resourceType") != resource_type:
                raise InvalidRequest(f"Parameter {name!r} must be a {resource_type} resource",
                                     expression=("Parameters.parameter",))  # fmt: skip
            if resource_type == "Bundle":
                _check_bundle(value)
            else:
                _validate(value, name, resource_type, resource_type)


def _check_bundle(bundle: dict[str, Any]) -> None:
    """The Bundle's own elements, then each entry's resource on its own (a Bundle entry may hold `contained`)."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidResource("Parameter 'data': Bundle.entry must be a list", expression=("Bundle.entry",))
    shells = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise InvalidResource("Parameter 'data': a Bundle entry must be an object", expression=(where,))
        if "resource" in entry:
            _validate(entry["resource"], "data", f"{where}.resource", None)
        shell = {k: v for k, v in entry.items() if k != "resource"}
        if shell:
            shells.append(shell)
    _validate({k: v for k, v in bundle.items() if k != "entry"} | ({"entry": shells} if shells else {}), "data",
              "Bundle", "Bundle")  # fmt: skip


def _validate(resource: Any, name: str, path: str, expected: str | None) -> None:
    try:
        validate_resource(resource, expected_type=expected, served=expected not in ("Bundle", "Parameters"))
    except InvalidResource as exc:
        issues = [_at(issue, path) for issue in exc.issues()]
        head, rest = issues[0], issues[1:]
        raise InvalidResource(f"Parameter {name!r}: {head.diagnostics}", expression=head.expression,
                              issues=rest) from exc  # fmt: skip


def _at(issue: Issue, path: str) -> Issue:
    """The validator names elements from the resource's type (`Observation.status`): restate them from `path`."""
    moved = tuple(_moved(e, path) for e in issue.expression)
    return Issue(issue.diagnostics, issue.code, issue.severity, moved or (path,))


def _moved(expression: str, path: str) -> str:
    head, dot, rest = expression.partition(".")
    if head[:1].isupper():  # `Observation.status` -> `<path>.status`
        return f"{path}{dot}{rest}"
    return f"{path}.{expression}"  # `resourceType`

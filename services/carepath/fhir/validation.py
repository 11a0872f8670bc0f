"""Validate a FHIR R4 resource as received (a JSON dict), reporting every problem with the element's path.

Two passes over the same, unmodified dict:
1. our JSON walk (`json_walk`, guided by the model's element map): JSON kinds of primitives, unknown element
   names, null / empty values, the resource id, required code bindings and contained resources;
2. the fhir.resources R4B model (structure, cardinality, formats, choice elements), its errors mapped back to
   FHIRPath-style expressions.
An element reported by the walk is not reported again by the model pass.

Both passes are skipped for what was found valid before (`valid_items`): a resource whose shape (its set of
elements) and every item (element value) were seen valid at the same place is valid, and an item not seen yet
is checked alone — the walk and its type's validator on that item only. Generated resources repeat their
definitions' content call after call, so what is validated per call is mostly what the engine filled in (dates,
references, dynamicValue results). Anything the quick path cannot vouch for — an unknown shape, an item that
fails, a null, a `_name` extension without its value — goes through both full passes, which give every message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from carepath.errors import InvalidResource, Issue
from carepath.fhir.elements import choice_groups, elements
from carepath.fhir.json_walk import Walk, contained_model, issue
from carepath.fhir.models import is_supported, model_class, unsupported_reason
from carepath.fhir.valid_items import known_valid_as, remember


def validate_resource(resource: dict[str, Any], *, expected_type: str | None = None, served: bool = True) -> None:
    """Raise InvalidResource (one Issue per problem) unless `resource` is a valid R4 resource we serve (or, with
    `served=False`, of any R4 type: a Bundle or Parameters given to an operation)."""
    resource_type = _check_type(resource, expected_type, served)
    model = model_class(resource_type)
    if known_valid_as(resource, model):
        return
    full_validation(resource, model)
    remember(resource, model)


def full_validation(resource: dict[str, Any], model: type[BaseModel]) -> None:
    """Both passes over the whole resource (`validate_resource` without what it already knows)."""
    resource_type = str(resource["resourceType"])
    walk = Walk()
    walk.resource(resource, model, resource_type)
    issues = walk.issues + _model_issues(model, resource, resource_type, walk.issues)
    if issues:
        raise _invalid(issues)


def _check_type(resource: Any, expected_type: str | None, served: bool) -> str:
    if not isinstance(resource, dict):
        raise InvalidResource("A resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource("The resource has no resourceType", expression=("resourceType",))
    if served and not is_supported(resource_type):
        raise InvalidResource(unsupported_reason(resource_type), expression=("resourceType",))
    if expected_type is not None and resource_type != expected_type:
        raise InvalidResource(
            f"resourceType '{resource_type}' does not match the expected type '{expected_type}'",
            expression=("resourceType",),
        )
    return resource_type


def _invalid(issues: list[Issue]) -> InvalidResource:
    head, *rest = issues
    return InvalidResource(head.diagnostics, expression=head.expression, issues=rest)


# --- the model pass -------------------------------------------------------------------------------------------


def _model_issues(model: type[BaseModel], resource: dict[str, Any], root: str, known: list[Issue]) -> list[Issue]:
    """The model's issues on elements the walk has not already reported."""
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        seen = {issue.expression for issue in known}
        issues: list[Issue] = []
        for error in exc.errors(include_url=False):
            issues += [i for i in _error_issues(error, model, resource, root) if i.expression not in seen]
        return issues
    except (TypeError, AttributeError, KeyError) as exc:
        # Some fhir.resources validators crash on a wrong JSON type (a number as a url, an unknown contained
        # resourceType); the walk has named those elements already.
        return [] if known else [issue(root, f"The resource could not be validated: {exc!r}")]
    return []


def _error_issues(error: Any, model: type[BaseModel], resource: dict[str, Any], root: str) -> list[Issue]:
    path, node, at = _locate(error["loc"], model, resource, root)
    if error["type"] in ("missing", "model_field_validation.missing"):
        name = str(error["loc"][-1])
        return [issue(path, f"Missing required element '{name}'")]
    if at is not None and isinstance(node, dict) and error["type"] == "value_error":
        choice = _choice_issues(at, node, path)
        if choice:
            return choice
    return [issue(path, _message(error))]


def _locate(loc: tuple[Any, ...], model: type[BaseModel], resource: dict[str, Any], root: str) -> tuple[str, Any, Any]:
    """Follow a pydantic loc through the JSON and the element map: (FHIRPath, JSON node, model class or None).

    pydantic locs use the JSON names (aliases) but may carry internal parts ("root", "resource_type"): those are
    dropped, except resource_type, which is the resourceType element."""
    path = root
    node: Any = resource
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if current is None:  # inside a contained resource: its class comes from the JSON
            current = contained_model(node)
        spec = elements(current).get(part) if current is not None else None
        if spec is None:  # an unknown JSON key (extra_forbidden) stays in the path, internal parts do not
            if isinstance(node, dict) and part in node:
                path, node, current = f"{path}.{part}", node[part], None
            elif part == "resource_type":
                path += ".resourceType"
            continue
        path += f".{part}"
        node = node.get(part) if isinstance(node, dict) else None
        current = spec.model
    return path, node, current if current is not None else contained_model(node)


def _choice_issues(model: type[BaseModel], node: dict[str, Any], path: str) -> list[Issue]:
    """The model's own choice checks (value[x]) report at the parent with python names; say which [x] it is."""
    issues = []
    for prefix, (names, required) in choice_groups(model).items():
        present = [name for name in names if name in node]
        expression = f"{path}.{prefix}[x]"
        if len(present) > 1:
            diagnostics = f"Only one of {prefix}[x] may be present; found {', '.join(present)}"
            issues.append(issue(expression, diagnostics))
        elif required and not present:
            issues.append(issue(expression, f"Missing required element {prefix}[x]"))
    return issues


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, (str, int, float, Decimal)) and len(str(value)) <= 80 and repr(value) not in message:
        message += f" (got {value!r})"
    return message

"""Validate a FHIR R4 resource as received (a JSON dict), reporting every problem with the element's path.

Two passes over the same, unmodified dict:
1. our JSON walk (guided by the model's element map): JSON kinds of primitives (the models are lax: they take
   "true" for a boolean), unknown element names, null / empty values, the resource id, required code bindings
   and contained resources;
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

import re
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from carepath.errors import InvalidResource, Issue
from carepath.fhir.bindings import REQUIRED_BINDINGS, Binding
from carepath.fhir.durations import MAX_YEARS, out_of_range
from carepath.fhir.elements import ElementSpec, choice_groups, elements, resolve_path, resource_model
from carepath.fhir.models import is_supported, model_class, unsupported_reason
from carepath.fhir.valid_items import VALID, item_key, primitive_adapter

# http://hl7.org/fhir/R4/datatypes.html#id
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# http://hl7.org/fhir/R4/datatypes.html#string: no control characters but tab, CR and LF (PostgreSQL cannot even
# store U+0000 in text, so accepting them would turn a client's mistake into a server error).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Durations far beyond any clinical meaning overflow date arithmetic ($apply): refused when stored.
_TIME_QUANTITIES = frozenset({"Duration", "Age"})

_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "decimal": (int, Decimal, float),
    "string": (str,),
}


def validate_resource(resource: dict[str, Any], *, expected_type: str | None = None, served: bool = True) -> None:
    """Raise InvalidResource (one Issue per problem) unless `resource` is a valid R4 resource we serve (or, with
    `served=False`, of any R4 type: a Bundle or Parameters given to an operation)."""
    resource_type = _check_type(resource, expected_type, served)
    model = model_class(resource_type)
    if _known_valid(resource, model):
        return
    full_validation(resource, model)
    _remember(resource, model)


def full_validation(resource: dict[str, Any], model: type[BaseModel]) -> None:
    """Both passes over the whole resource (`validate_resource` without what it already knows)."""
    resource_type = str(resource["resourceType"])
    walk = _Walk()
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


def _issue(path: str, diagnostics: str) -> Issue:
    # All "invalid", the code InvalidResource gives its first issue too: one consistent OperationOutcome.
    return Issue(diagnostics, InvalidResource.code, "error", (path,))


def _invalid(issues: list[Issue]) -> InvalidResource:
    head, *rest = issues
    return InvalidResource(head.diagnostics, expression=head.expression, issues=rest)


@cache
def _resolved_bindings() -> dict[tuple[type[BaseModel], str], Binding]:
    """The binding table keyed by (model class, JSON name), resolved once."""
    return {resolve_path(path): binding for path, binding in REQUIRED_BINDINGS.items()}


@cache
def _bindings_of(model: type[BaseModel]) -> dict[str, Binding]:
    """JSON name -> binding for one class, including those of its bases (Duration inherits Quantity's)."""
    table = _resolved_bindings()
    return {name: b for (owner, name), b in table.items() if issubclass(model, owner)}


class _Walk:
    """One pass over the JSON, collecting issues. Shapes the model reports itself (list vs object) are skipped."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def report(self, path: str, diagnostics: str) -> None:
        self.issues.append(_issue(path, diagnostics))

    def resource(self, node: dict[str, Any], model: type[BaseModel], path: str) -> None:
        rid = node.get("id")
        if isinstance(rid, str) and not _ID.fullmatch(rid):
            self.report(f"{path}.id", f"Invalid id '{rid}': 1-64 characters from A-Z a-z 0-9 - .")
        self.element(node, model, path)

    def element(self, node: dict[str, Any], model: type[BaseModel], path: str) -> None:
        if not node:
            self.report(path, "An element must have a value or children; empty objects are not allowed")
        specs = elements(model)
        bindings = _bindings_of(model)
        for key, value in node.items():
            spec = specs.get(key)
            if spec is None:
                if key != "resourceType":
                    self.report(f"{path}.{key}", f"Unknown element '{key}'")
            elif value is None:
                self.report(f"{path}.{key}", "null is not allowed here (only inside arrays of primitives)")
            else:
                self.value(value, spec, f"{path}.{key}", node.get(f"_{key}"))
                binding = bindings.get(key)
                if binding is not None:
                    self.binding(value, binding, f"{path}.{key}")
        if model.__name__ in _TIME_QUANTITIES and out_of_range(node):
            self.report(path, f"A duration longer than {MAX_YEARS} years is out of range")

    def value(self, value: Any, spec: ElementSpec, path: str, extensions: Any) -> None:
        """`extensions` is the `_name` sibling of a primitive element (http://hl7.org/fhir/R4/json.html#primitive)."""
        if not spec.repeats:
            self.single(value, spec, path)
        elif isinstance(value, list):
            if not value:
                self.report(path, "Empty arrays are not allowed; leave the element out")
            for index, item in enumerate(value):
                if item is not None:
                    self.single(item, spec, f"{path}[{index}]")
                elif spec.kind not in ("complex", "resource") and not _has_item(extensions, index):
                    # A null in a primitive array only lines a value up with its extension in `_name`.
                    self.report(f"{path}[{index}]", "null in an array needs an extension at the same index of _name")

    def single(self, value: Any, spec: ElementSpec, path: str) -> None:
        if spec.kind == "resource":
            self.contained(value, path)
        elif spec.model is not None:
            if isinstance(value, dict):
                self.element(value, spec.model, path)
        elif type(value) not in _JSON_KINDS[spec.kind]:
            self.report(path, f"Expected a JSON {spec.kind}, got {_json_name(value)}")
        elif value == "":
            self.report(path, "Empty strings are not allowed; leave the element out")
        elif isinstance(value, str) and _CONTROL.search(value):
            self.report(path, "Control characters (below U+0020 except tab, CR and LF) are not allowed in strings")

    def contained(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        resource_type = value.get("resourceType")
        model = resource_model(resource_type) if isinstance(resource_type, str) else None
        if model is None:
            self.report(f"{path}.resourceType", f"Unknown resourceType {resource_type!r} of a contained resource")
        elif "contained" in value:
            self.report(f"{path}.contained", "A contained resource cannot contain resources (dom-2)")
        else:
            self.resource(value, model, path)

    def binding(self, value: Any, binding: Binding, path: str) -> None:
        for item_path, item in _items(value, path):
            if binding.system is not None:
                if isinstance(item, dict):
                    self.concept(item, binding, item_path)
            elif isinstance(item, str) and item not in binding.codes:
                self.report(item_path, _not_in(item, binding))

    def concept(self, concept: dict[str, Any], binding: Binding, path: str) -> None:
        """Required binding on a CodeableConcept: a coding from the bound system, with a code from the set."""
        codings = concept.get("coding")
        found = False
        for coding_path, coding in _items(codings if isinstance(codings, list) else [], f"{path}.coding"):
            if isinstance(coding, dict) and coding.get("system") == binding.system:
                found = True
                code = coding.get("code")
                if code is None or (isinstance(code, str) and code not in binding.codes):
                    self.report(f"{coding_path}.code", _not_in(code, binding))
        if not found:
            self.report(path, f"Required binding: a coding from {binding.system} is needed")


def _has_item(value: Any, index: int) -> bool:
    return isinstance(value, list) and index < len(value) and value[index] is not None


def _items(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item
    else:
        yield path, value


def _not_in(code: Any, binding: Binding) -> str:
    return f"Code {code!r} is not in the required value set {binding.value_set} ({', '.join(sorted(binding.codes))})"


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# --- the quick path: what was found valid before -----------------------------------------------------------


def known_valid(resource: dict[str, Any]) -> bool:
    """Whether the quick path alone vouches for `resource` (then `validate_resource` runs neither full pass)."""
    model = resource_model(str(resource.get("resourceType")))
    return model is not None and _known_valid(resource, model)


def _known_valid(node: dict[str, Any], model: type[BaseModel], resource: bool = True) -> bool:
    """True only if `node` (a resource, or with `resource=False` a complex element) is valid: its shape is known
    valid and each item is known or checks alone."""
    if not VALID.has_shape((model, frozenset(node))):
        return False
    rid = node.get("id")
    if resource and isinstance(rid, str) and not _ID.fullmatch(rid):
        return False
    specs = elements(model)
    bindings = _bindings_of(model)
    for key, value in node.items():
        if key == "resourceType" and resource:
            continue
        spec = specs.get(key)
        if spec is None or value is None or (key.startswith("_") and key[1:] not in node):
            return False  # unknown element, null, or a primitive's extension standing in for its absent value
        if not spec.repeats:
            if isinstance(value, list) or not _item_valid(model, key, spec, bindings.get(key), value):
                return False  # a list where one value goes (the model names it), or an invalid value
        elif not _items_valid(model, key, spec, bindings.get(key), value):
            return False
    return True


def _items_valid(model: type[BaseModel], name: str, spec: ElementSpec, binding: Binding | None, value: Any) -> bool:
    """A repeating element: a non-empty list of valid items. A list seen whole before is known at once."""
    if not isinstance(value, list) or not value:
        return False
    # Its own key space ("name[*]"): an item that is itself a list must never match a list seen valid whole.
    whole = item_key(model, f"{name}[*]", value) if spec.kind != "resource" else None
    if whole is not None and VALID.has_item(whole):
        return True
    for item in value:
        if not _item_valid(model, name, spec, binding, item):
            return False
    if whole is not None:
        VALID.add_item(whole)
    return True


def _item_valid(model: type[BaseModel], name: str, spec: ElementSpec, binding: Binding | None, item: Any) -> bool:
    if item is None:
        return False
    if spec.kind == "resource":  # a contained resource: its own shape and items
        inner = _contained_model(item)
        return inner is not None and "contained" not in item and _known_valid(item, inner)
    key = item_key(model, name, item)
    if key is not None and VALID.has_item(key):
        return True
    inner = _element_model(spec, item)
    # A complex item not seen whole (a Reference to a new id, a Period with new dates) is often known element
    # by element, which is cheaper than its model; else the walk and the model check it alone.
    if inner is None or not _known_valid(item, inner, resource=False) or not _binding_holds(item, binding, name):
        walk = _Walk()
        walk.single(item, spec, name)
        if binding is not None:
            walk.binding(item, binding, name)
        if walk.issues or not _model_accepts(model, name, spec, item):
            return False
        if inner is not None:
            _remember(item, inner)
    if key is not None:
        VALID.add_item(key)
    return True


def _binding_holds(item: Any, binding: Binding | None, name: str) -> bool:
    if binding is None:
        return True
    walk = _Walk()
    walk.binding(item, binding, name)
    return not walk.issues


def _element_model(spec: ElementSpec, item: Any) -> type[BaseModel] | None:
    """The class of a complex item that can be known element by element (not a Duration or Age: their range
    check looks at values together)."""
    if spec.model is None or not isinstance(item, dict) or spec.model.__name__ in _TIME_QUANTITIES:
        return None
    return spec.model


def _model_accepts(model: type[BaseModel], name: str, spec: ElementSpec, item: Any) -> bool:
    """What the model does with this one item of the field: its class's model_validate, or the primitive's type."""
    try:
        if spec.model is None:
            primitive_adapter(model, name).validate_python(item)
        elif isinstance(item, dict):
            spec.model.model_validate(item)
        else:
            return False
    except (ValidationError, TypeError, AttributeError, KeyError, ValueError):
        return False
    return True


def _remember(node: dict[str, Any], model: type[BaseModel]) -> None:
    """After both passes accepted `node`: its shape, each item, and the same for its contained resources (and
    for its large complex items, which are known element by element)."""
    VALID.add_shape((model, frozenset(node)))
    specs = elements(model)
    for key, value in node.items():
        spec = specs.get(key)
        if spec is None:
            continue
        for item in value if spec.repeats and isinstance(value, list) else [value]:
            if spec.kind == "resource":
                inner = _contained_model(item)
                if inner is not None:
                    _remember(item, inner)
            elif item is not None and (found := item_key(model, key, item)) is not None:
                VALID.add_item(found)
            elif (inner := _element_model(spec, item)) is not None:
                _remember(item, inner)


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
        return [] if known else [_issue(root, f"The resource could not be validated: {exc!r}")]
    return []


def _error_issues(error: Any, model: type[BaseModel], resource: dict[str, Any], root: str) -> list[Issue]:
    path, node, at = _locate(error["loc"], model, resource, root)
    if error["type"] in ("missing", "model_field_validation.missing"):
        name = str(error["loc"][-1])
        return [_issue(path, f"Missing required element '{name}'")]
    if at is not None and isinstance(node, dict) and error["type"] == "value_error":
        choice = _choice_issues(at, node, path)
        if choice:
            return choice
    return [_issue(path, _message(error))]


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
            current = _contained_model(node)
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
    return path, node, current if current is not None else _contained_model(node)


def _contained_model(node: Any) -> type[BaseModel] | None:
    if isinstance(node, dict) and isinstance(node.get("resourceType"), str):
        return resource_model(node["resourceType"])
    return None


def _choice_issues(model: type[BaseModel], node: dict[str, Any], path: str) -> list[Issue]:
    """The model's own choice checks (value[x]) report at the parent with python names; say which [x] it is."""
    issues = []
    for prefix, (names, required) in choice_groups(model).items():
        present = [name for name in names if name in node]
        expression = f"{path}.{prefix}[x]"
        if len(present) > 1:
            diagnostics = f"Only one of {prefix}[x] may be present; found {', '.join(present)}"
            issues.append(_issue(expression, diagnostics))
        elif required and not present:
            issues.append(_issue(expression, f"Missing required element {prefix}[x]"))
    return issues


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, (str, int, float, Decimal)) and len(str(value)) <= 80 and repr(value) not in message:
        message += f" (got {value!r})"
    return message

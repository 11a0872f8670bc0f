"""The JSON walk of validation: one pass over a resource as received, guided by the model's element map
(`elements`), collecting an Issue per problem with the element's FHIRPath-style path: JSON kinds of primitives
(the models are lax: they take "true" for a boolean), unknown element names, null / empty values, the resource
id, control characters, required code bindings, durations out of range and contained resources.

Shapes the model reports itself (a list where one value goes, and the reverse) are left to the model pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel

from carepath.errors import InvalidResource, Issue
from carepath.fhir.bindings import REQUIRED_BINDINGS, Binding
from carepath.fhir.durations import MAX_YEARS, out_of_range
from carepath.fhir.elements import ElementSpec, elements, resolve_path, resource_model

# http://hl7.org/fhir/R4/datatypes.html#id
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# http://hl7.org/fhir/R4/datatypes.html#string: no control characters but tab, CR and LF (PostgreSQL cannot even
# store U+0000 in text, so accepting them would turn a client's mistake into a server error).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Durations far beyond any clinical meaning overflow date arithmetic ($apply): refused when stored.
TIME_QUANTITIES = frozenset({"Duration", "Age"})

_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "decimal": (int, Decimal, float),
    "string": (str,),
}


def issue(path: str, diagnostics: str) -> Issue:
    # All "invalid", the code InvalidResource gives its first issue too: one consistent OperationOutcome.
    return Issue(diagnostics, InvalidResource.code, "error", (path,))


@cache
def _resolved_bindings() -> dict[tuple[type[BaseModel], str], Binding]:
    """The binding table keyed by (model class, JSON name), resolved once."""
    return {resolve_path(path): binding for path, binding in REQUIRED_BINDINGS.items()}


@cache
def bindings_of(model: type[BaseModel]) -> dict[str, Binding]:
    """JSON name -> binding for one class, including those of its bases (Duration inherits Quantity's)."""
    table = _resolved_bindings()
    return {name: b for (owner, name), b in table.items() if issubclass(model, owner)}


class Walk:
    """One pass over the JSON, collecting issues. Shapes the model reports itself (list vs object) are skipped."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def report(self, path: str, diagnostics: str) -> None:
        self.issues.append(issue(path, diagnostics))

    def resource(self, node: dict[str, Any], model: type[BaseModel], path: str) -> None:
        rid = node.get("id")
        if isinstance(rid, str) and not ID.fullmatch(rid):
            self.report(f"{path}.id", f"Invalid id '{rid}': 1-64 characters from A-Z a-z 0-9 - .")
        self.element(node, model, path)

    def element(self, node: dict[str, Any], model: type[BaseModel], path: str) -> None:
        if not node:
            self.report(path, "An element must have a value or children; empty objects are not allowed")
        specs = elements(model)
        bindings = bindings_of(model)
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
        if model.__name__ in TIME_QUANTITIES and out_of_range(node):
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


def contained_model(node: Any) -> type[BaseModel] | None:
    if isinstance(node, dict) and isinstance(node.get("resourceType"), str):
        return resource_model(node["resourceType"])
    return None

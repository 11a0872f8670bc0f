"""The two PATCH formats of R4 (§3.1.0.7.2), applied to a resource's JSON: pure, no I/O.

- JSON Patch (RFC 6902, `application/json-patch+json`), applied by the `jsonpatch` library.
- FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html): a `Parameters` resource whose `operation` parameters
  each have a `type` (add | insert | delete | replace | move), a FHIRPath `path`, and `name`, `value`, `index`,
  `source`, `destination` as the type needs. Paths are evaluated with carepath's FHIRPath on a copy of the
  resource whose objects carry a location tag, so each selected object is found again in the real resource.
  A path whose last step selects a primitive must end in an element name (`Task.status`, `Patient.name[0].given`).

A malformed patch document is a 400; a patch that cannot be applied to this resource (a path that selects
nothing where one element is needed, a failed JSON Patch `test`) is a 422.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

import jsonpatch
import jsonpointer

from carepath import jsonutil
from carepath.errors import BusinessRuleViolation, InvalidRequest
from carepath.fhir.elements import elements, resource_model
from carepath.fhir.fhirpath import FhirPathError, evaluate

Format = Literal["json-patch", "fhirpath-patch"]
JSON_PATCH = "application/json-patch+json"
_TAG = "__carepath_patch_location"


@dataclass(frozen=True)
class Patch:
    format: Format
    document: Any  # the JSON Patch array, or the Parameters resource


def patch_from_body(content_type: str, document: Any) -> Patch:
    """A PATCH request's body: JSON Patch by its media type, FHIRPath Patch as a FHIR JSON Parameters resource."""
    if content_type == JSON_PATCH:
        return Patch("json-patch", document)
    return Patch("fhirpath-patch", document)


def patch_from_resource(resource: Any, where: str) -> Patch:
    """The patch of a Bundle entry (R4 §3.1.0.11.1): a Binary holding a JSON Patch, or a Parameters resource."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if kind == "Parameters":
        return Patch("fhirpath-patch", resource)
    if kind == "Binary" and resource.get("contentType") == JSON_PATCH and isinstance(resource.get("data"), str):
        try:
            raw = base64.b64decode(resource["data"], validate=True)
        except binascii.Error:
            raise InvalidRequest(f"{where}: Binary.data is not base64", expression=(f"{where}.data",)) from None
        return Patch("json-patch", jsonutil.loads(raw))
    raise InvalidRequest(f"{where}: a PATCH entry needs a Parameters resource (FHIRPath Patch) or a Binary with "
                         f"contentType {JSON_PATCH}", expression=(where,))  # fmt: skip


def apply_patch(resource: dict[str, Any], patch: Patch) -> dict[str, Any]:
    """The patched copy of `resource`; `resource` itself is left as it was."""
    if patch.format == "json-patch":
        return _json_patch(resource, patch.document)
    patched = copy.deepcopy(resource)
    for index, operation in enumerate(_operations(patch.document)):
        _FhirPathOperation(operation, f"Parameters.parameter[{index}]").apply(patched)
    return patched


def _json_patch(resource: dict[str, Any], document: Any) -> dict[str, Any]:
    if not isinstance(document, list):
        raise InvalidRequest("A JSON Patch body must be a JSON array of operations (RFC 6902)")
    try:
        parsed = jsonpatch.JsonPatch(document)
    except (jsonpatch.InvalidJsonPatch, TypeError, AttributeError) as exc:
        raise InvalidRequest(f"Invalid JSON Patch: {exc}") from None
    try:
        patched: dict[str, Any] = parsed.apply(resource)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise BusinessRuleViolation(f"JSON Patch test failed: {exc}") from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise InvalidRequest(f"Invalid JSON Patch: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise BusinessRuleViolation(f"JSON Patch cannot be applied to this resource: {exc}") from None
    if not isinstance(patched, dict):
        raise BusinessRuleViolation("JSON Patch replaced the whole resource with something that is not an object")
    return patched


def _operations(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("resourceType") != "Parameters":
        raise InvalidRequest("A FHIRPath Patch body must be a Parameters resource", expression=("resourceType",))
    parameters = document.get("parameter")
    if not isinstance(parameters, list) or not parameters:
        raise InvalidRequest("FHIRPath Patch needs at least one operation", expression=("Parameters.parameter",))
    for index, parameter in enumerate(parameters):
        if not isinstance(parameter, dict) or parameter.get("name") != "operation":
            where = f"Parameters.parameter[{index}]"
            raise InvalidRequest(f"{where} must be an operation", expression=(f"{where}.name",))
    return parameters


@dataclass(frozen=True)
class _Location:
    container: Any  # the dict (key is a name) or list (key is an index) that holds the element; None: the root
    key: str | int | None
    model: Any  # the model class of the selected element when it is complex, else None


class _FhirPathOperation:
    def __init__(self, operation: dict[str, Any], where: str) -> None:
        self.where = where
        self.parts: dict[str, Any] = {}
        for part in operation.get("part") or []:
            if isinstance(part, dict) and isinstance(part.get("name"), str):
                self.parts[part["name"]] = part
        self.type = self._text("type")
        if self.type not in ("add", "insert", "delete", "replace", "move"):
            raise self._invalid(f"operation type {self.type!r} is not add, insert, delete, replace or move", "type")
        self.path = self._text("path")

    def apply(self, resource: dict[str, Any]) -> None:
        if self.type == "add":
            self._add(resource)
        elif self.type == "insert":
            items, _ = self._list(resource)
            index = self._int("index", 0, len(items))
            items.insert(index, self._value())
        elif self.type == "move":
            items, _ = self._list(resource)
            source = self._int("source", 0, len(items) - 1)
            destination = self._int("destination", 0, len(items) - 1)
            items.insert(destination, items.pop(source))
        else:
            found = _locate(resource, self.path, self.where)
            if self.type == "delete" and not found:
                return  # deleting what is not there is not an error (FHIRPath Patch)
            if len(found) != 1:
                raise BusinessRuleViolation(f"{self.where}: {self.path!r} selects {len(found)} elements, not one")
            location = found[0]
            if location.container is None:
                raise self._invalid("the whole resource cannot be deleted or replaced", "path")
            if self.type == "replace":
                location.container[location.key] = self._value()
            else:
                del location.container[location.key]
                _prune(resource)

    def _add(self, resource: dict[str, Any]) -> None:
        found = _locate(resource, self.path, self.where)
        if len(found) != 1:
            raise BusinessRuleViolation(f"{self.where}: {self.path!r} selects {len(found)} elements, not one")
        target = found[0].container[found[0].key] if found[0].container is not None else resource
        name = self._text("name")
        spec = elements(found[0].model).get(name) if found[0].model is not None else None
        if not isinstance(target, dict) or spec is None:
            raise self._invalid(f"{self.path!r} has no element {name!r} to add", "name")
        value = self._value()
        if spec.repeats:
            target.setdefault(name, []).append(value)
        elif name in target:
            raise BusinessRuleViolation(f"{self.where}: {self.path}.{name} already has a value; use replace")
        else:
            target[name] = value

    def _list(self, resource: dict[str, Any]) -> tuple[list[Any], str]:
        parent_path, name = _split_last(self.path)
        if name is None or not name.isidentifier():
            raise self._invalid(f"{self.path!r} must end in the name of a repeating element", "path")
        parents = _locate(resource, parent_path, self.where)
        if len(parents) != 1:
            raise BusinessRuleViolation(f"{self.where}: {parent_path!r} selects {len(parents)} elements, not one")
        parent = _element(resource, parents[0])
        items = parent.get(name) if isinstance(parent, dict) else None
        if not isinstance(items, list):
            raise BusinessRuleViolation(f"{self.where}: {self.path!r} is not a list in this resource")
        return items, name

    def _value(self) -> Any:
        part = self.parts.get("value")
        if part is None:
            raise self._invalid("value is required", "value")
        return _part_value(part, f"{self.where}.part[value]")

    def _text(self, name: str) -> str:
        part = self.parts.get(name) or {}
        value = next((v for k, v in part.items() if k.startswith("value")), None)
        if not isinstance(value, str) or not value:
            raise self._invalid(f"{name} is required", name)
        return value

    def _int(self, name: str, low: int, high: int) -> int:
        value = (self.parts.get(name) or {}).get("valueInteger")
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self._invalid(f"{name} must be an integer from {low} to {high}", name)
        return value

    def _invalid(self, message: str, part: str) -> InvalidRequest:
        return InvalidRequest(f"{self.where}: {message}", expression=(f"{self.where}.part[{part}]",))


def _part_value(part: dict[str, Any], where: str) -> Any:
    """`valueX` as its JSON value, or a complex value given as nested parts (one per element)."""
    for key, value in part.items():
        if key.startswith("value"):
            return value
    nested = part.get("part")
    if not isinstance(nested, list) or not nested:
        raise InvalidRequest(f"{where} has no value", expression=(where,))
    out: dict[str, Any] = {}
    for index, child in enumerate(nested):
        if not isinstance(child, dict) or not isinstance(child.get("name"), str):
            raise InvalidRequest(f"{where}.part[{index}] needs a name", expression=(f"{where}.part[{index}]",))
        value = _part_value(child, f"{where}.part[{index}]")
        name = child["name"]
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def _locate(resource: dict[str, Any], path: str, where: str) -> list[_Location]:
    """Where in `resource` the elements `path` selects are."""
    model = resource_model(str(resource.get("resourceType")))
    if path == resource.get("resourceType"):
        return [_Location(None, None, model)]
    tagged, locations = _tagged(resource, model)
    parent_path, name = _split_last(path)
    try:
        if name is not None:  # the last step is an element name: it may select primitives, found by key
            out = []
            for parent in _evaluate(tagged, parent_path):
                spot = locations.get(parent.get(_TAG, -1)) if isinstance(parent, dict) else None
                if spot is None:
                    continue
                step = _LAST_STEP.fullmatch(name)
                assert step is not None
                children = _children(_element(resource, spot), step[1], spot.model)
                out += children if step[2] is None else children[int(step[2]) : int(step[2]) + 1]
            return out
        return [locations[v[_TAG]] for v in _evaluate(tagged, path) if isinstance(v, dict) and v.get(_TAG) in locations]
    except FhirPathError as exc:
        where_path = (f"{where}.part[path]",)
        raise InvalidRequest(f"{where}: cannot evaluate path {path!r}: {exc}", expression=where_path) from None


def _evaluate(tagged: dict[str, Any], path: str) -> list[Any]:
    return evaluate(tagged, path)


def _children(element: Any, name: str, model: Any) -> list[_Location]:
    if not isinstance(element, dict):
        return []
    key = name if name in element else next((k for k in element if re.fullmatch(f"{name}[A-Z]\\w*", k)), None)
    if key is None:
        return []
    spec = elements(model).get(key) if model is not None else None
    child_model = spec.model if spec is not None else None
    value = element[key]
    if isinstance(value, list):
        return [_Location(value, i, child_model) for i in range(len(value))]
    return [_Location(element, key, child_model)]


def _element(resource: dict[str, Any], location: _Location) -> Any:
    return resource if location.container is None else location.container[location.key]


def _tagged(resource: dict[str, Any], model: Any) -> tuple[dict[str, Any], dict[int, _Location]]:
    """A copy of `resource` whose every object carries a tag, and tag -> where that object is in `resource`."""
    locations: dict[int, _Location] = {0: _Location(None, None, model)}

    def walk(value: Any, spot: _Location) -> Any:
        if isinstance(value, dict):
            tag = len(locations) if spot.container is not None else 0
            locations[tag] = spot
            specs = elements(spot.model) if spot.model is not None else {}
            out: dict[str, Any] = {}
            for key, child in value.items():
                spec = specs.get(key)
                child_model = spec.model if spec is not None else None
                if isinstance(child, list):
                    out[key] = [walk(item, _Location(child, i, child_model)) for i, item in enumerate(child)]
                else:
                    out[key] = walk(child, _Location(value, key, child_model))
            out[_TAG] = tag
            return out
        return value

    return walk(resource, locations[0]), locations


def _split_last(path: str) -> tuple[str, str | None]:
    """`Patient.name.given` -> (`Patient.name`, `given`), `...given[1]` -> (`Patient.name`, `given[1]`); a path
    ending in a function -> (path, None)."""
    dot = _top_level_dot(path)
    if dot < 0:
        return path, None
    last = path[dot + 1 :]
    return (path[:dot], last) if _LAST_STEP.fullmatch(last) else (path, None)


_LAST_STEP = re.compile(r"([A-Za-z]\w*)(?:\[(\d+)\])?")


def _top_level_dot(path: str) -> int:
    """The index of the last `.` outside parentheses, brackets and string literals (-1: none)."""
    depth, quoted, found = 0, False, -1
    for i, ch in enumerate(path):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == ".":
            found = i
    return found


def _prune(value: Any) -> Any:
    """Drop lists and objects a delete left empty (R4 JSON never carries `[]` or `{}`)."""
    if isinstance(value, dict):
        for key in list(value):
            if _prune(value[key]) in ([], {}):
                del value[key]
    elif isinstance(value, list):
        value[:] = [v for v in value if _prune(v) not in ([], {})]
    return value

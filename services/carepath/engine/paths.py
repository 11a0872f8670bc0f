"""dynamicValue targets: set a value at a simple FHIRPath-like path (`priority`, `restriction.period.end`,
`dosageInstruction[0].text`) on a resource under construction, creating the intermediate elements."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from carepath.errors import BusinessRuleViolation
from carepath.fhir.models import model_class

_SEGMENT = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def _segments(path: str, resource_type: str, where: str) -> list[tuple[str, int | None]]:
    parts = path.split(".")
    if parts and parts[0] == resource_type:  # some content writes `Task.priority`
        parts = parts[1:]
    out: list[tuple[str, int | None]] = []
    for part in parts:
        match = _SEGMENT.match(part)
        if match is None:
            raise BusinessRuleViolation(f"Unsupported dynamicValue path {path!r}", expression=(where,))
        out.append((match.group(1), int(match.group(2)) if match.group(2) is not None else None))
    if not out:
        raise BusinessRuleViolation("Empty dynamicValue path", expression=(where,))
    return out


@lru_cache(maxsize=1024)
def field_shape(type_name: str | None, name: str) -> tuple[bool, str | None]:
    """(is the element a list?, its type name) from the R4 model, so `performerType` gets a list."""
    if type_name is None:
        return False, None
    try:
        fields = model_class(type_name).model_fields
    except (KeyError, LookupError, ValueError):
        return False, None
    for field_name, info in fields.items():
        if (info.alias or field_name) == name:
            annotation = str(info.annotation)
            match = re.search(r"abc\.(\w+)Type", annotation)
            return "List[" in annotation, match.group(1) if match else None
    return False, None


def _child(node: dict[str, Any], name: str, index: int | None, is_list: bool) -> dict[str, Any]:
    """The element `name[index]` below `node`, created when absent; a list element defaults to the first."""
    current = node.get(name)
    if isinstance(current, list) or index is not None or is_list:
        items = current if isinstance(current, list) else ([current] if isinstance(current, dict) else [])
        position = index or 0
        while len(items) <= position:
            items.append({})
        node[name] = items
        child: dict[str, Any] = items[position]
        return child
    if not isinstance(current, dict):
        node[name] = current = {}
    return current


def set_path(resource: dict[str, Any], path: str, values: list[Any], where: str) -> None:
    """Set the element at `path`; several values make a list, a list stays a list.

    No value writes nothing: the element is removed when present, no intermediate element is created, and an
    element left without content is removed too (R4 ele-1: an element has a value or children).
    """
    segments = _segments(path, str(resource.get("resourceType")), where)
    if not values:
        _remove(resource, segments)
        return
    node = resource
    type_name: str | None = str(resource.get("resourceType"))
    for name, index in segments[:-1]:
        is_list, next_type = field_shape(type_name, name)
        node = _child(node, name, index, is_list)
        type_name = next_type
    name, index = segments[-1]
    current = node.get(name)
    is_list = field_shape(type_name, name)[0]
    if index is not None:
        items = current if isinstance(current, list) else []
        while len(items) <= index:
            items.append(None)
        items[index] = values[0]
        node[name] = [item for item in items if item is not None]
    elif isinstance(current, list) or is_list or len(values) > 1:
        node[name] = list(values)
    else:
        node[name] = values[0]


def _remove(node: Any, segments: list[tuple[str, int | None]]) -> None:
    """Remove the element at `segments` (if it exists), then every element on the way that became empty."""
    if not isinstance(node, dict) or not segments:
        return
    (name, index), rest = segments[0], segments[1:]
    current = node.get(name)
    if index is None and not rest:
        node.pop(name, None)
        return
    items = current if isinstance(current, list) else [current] if current is not None else []
    position = index or 0
    if position >= len(items):
        return
    if rest:
        _remove(items[position], rest)
    if not rest or items[position] in ({}, [], None):
        del items[position]
    if isinstance(current, list):
        if items:
            node[name] = items
        else:
            node.pop(name)
    elif not items:
        node.pop(name)

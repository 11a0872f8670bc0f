"""dynamicValue targets: set a value at a simple FHIRPath-like path (`priority`, `restriction.period.end`,
`dosageInstruction[0].text`) on a resource under construction, creating the intermediate elements."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from carepath.errors import InvalidRequest
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
            raise InvalidRequest(f"Unsupported dynamicValue path {path!r}", expression=(where,))
        out.append((match.group(1), int(match.group(2)) if match.group(2) is not None else None))
    if not out:
        raise InvalidRequest("Empty dynamicValue path", expression=(where,))
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
    """Set the element at `path`; no value removes it, several values make a list, a list stays a list."""
    segments = _segments(path, str(resource.get("resourceType")), where)
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
        items[index] = values[0] if values else None
        node[name] = [item for item in items if item is not None]
    elif not values:
        node.pop(name, None)
    elif isinstance(current, list) or is_list or len(values) > 1:
        node[name] = list(values)
    else:
        node[name] = values[0]

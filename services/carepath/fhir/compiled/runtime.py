"""What compiled FHIRPath closures run on: the evaluation frame, member navigation, and the output conversion.

Items are represented exactly as fhirpathpy represents them (elements reached by navigation are `ResourceNode`s
carrying the same type path, literals and function results are plain values or fhirpathpy's FP_* objects), so
the same fhirpathpy value functions can be applied to them and give the same answers. What is replaced is only
the interpretation: navigation reads a per-(type path, key) table computed once instead of rebuilding paths,
matching regexes and re-dispatching per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.evaluators import create_reduce_member_invocation
from fhirpathpy.engine.nodes import FP_Type, ResourceNode

Items = list[Any]
Invocation = Callable[[Items], Items]  # resolve(), now(), today(): input items -> result items


class Unsupported(Exception):
    """Raised while compiling: the expression is outside the compiled subset (fhirpathpy evaluates it)."""


@dataclass
class Frame:
    """One evaluation: variables, the root, the host functions, and the iteration variables in force."""

    variables: dict[str, Any]
    root: Items
    resolve: Invocation
    now: Invocation
    today: Invocation
    this: Items
    index: int | None = None
    total: Any = None


Fn = Callable[[Items, Frame], Items]  # a compiled (sub-)expression: focus -> result


def arraify(value: Any) -> Items:
    """fhirpathpy's `arraify`: a list as is, None and [] as empty, anything else as a singleton."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def node(data: Any, path: str | None) -> ResourceNode:
    """`ResourceNode.create_node(data, path)` (a resource keeps its own type as path), built directly for JSON."""
    kind = type(data)
    if kind is dict:
        if "resourceType" in data:
            path = data["resourceType"]
    elif kind not in _SCALARS:
        created: ResourceNode = ResourceNode.create_node(data, path)  # type: ignore[no-untyped-call]
        return created
    made: ResourceNode = _new(ResourceNode)
    made.data, made.path, made._data, made.propName, made.index = data, path, None, None, None
    return made


_SCALARS = frozenset({str, int, float, bool, Decimal, type(None)})
_new = object.__new__


@dataclass(frozen=True)
class _Slot:
    """Where a key of an element of some type lives: the JSON keys to try (a choice has several) and its type."""

    candidates: tuple[tuple[str, str, str], ...]  # (key, "_" + key, resulting type path)


class Member:
    """Navigation `.key` over items, with fhirpathpy's semantics (choice types, `_key` primitive extensions)."""

    def __init__(self, key: str, model: dict[str, Any]) -> None:
        self.key = key
        self.model = model
        self._slots: dict[str | None, _Slot] = {}
        # The reference implementation, for items that are not plain JSON objects (FP_Quantity, strings, ...).
        self._generic = create_reduce_member_invocation(model, key)  # type: ignore[no-untyped-call]

    def _slot(self, path: str | None) -> _Slot:
        slot = self._slots.get(path)
        if slot is None:
            slot = self._slots[path] = self._compute(path)
        return slot

    def _compute(self, path: str | None) -> _Slot:
        key, model = self.key, self.model
        child = f"{path}.{key}" if path else f"_.{key}"
        child = model["pathsDefinedElsewhere"].get(child, child)
        types = model["choiceTypePaths"].get(child)
        path2type = model["path2Type"]
        if types:
            return _Slot(tuple((key + t, f"_{key}{t}", path2type.get(child + t, child + t)) for t in types))
        if key == "extension":
            child = "Extension"
        return _Slot(((key, f"_{key}", path2type.get(child, child)),))

    def step(self, pairs: list[Pair]) -> list[Pair]:
        out: list[Pair] = []
        for data, path in pairs:
            if type(data) is not dict:
                out.extend((found.data, found.path) for found in self._generic([], node(data, path)))
                continue
            slot = self._slots.get(path) or self._slot(path)
            for key, ext_key, type_path in slot.candidates:
                value, ext = data.get(key), data.get(ext_key)
                if value is None and ext is None:
                    continue
                if type(value) is list:
                    out.extend([_pair_of(v, type_path) for v in value])
                elif value is not None:
                    out.append(_pair_of(value, type_path))
                if ext is not None:
                    _add(out, ext, type_path)
                break
        return out


Pair = tuple[Any, str | None]  # an element on the way (its JSON and its type path), made a node only at the end


def _add(out: list[Pair], value: Any, type_path: str) -> None:
    if type(value) is list:
        out.extend([_pair_of(v, type_path) for v in value])
    elif value is not None:
        out.append(_pair_of(value, type_path))


def _pair_of(value: Any, type_path: str | None) -> Pair:
    if type(value) is dict and "resourceType" in value:
        return value, value["resourceType"]
    return value, type_path


def _pair(item: Any) -> Pair:
    if type(item) is ResourceNode:
        return item.data, item.path
    if type(item) is dict:
        return item, item.get("resourceType")
    made = node(item, None)
    return made.data, made.path


class Path:
    """`a.b.c`: member steps over (JSON, type path) pairs; only the elements reached become ResourceNodes."""

    def __init__(self, members: tuple[Member, ...]) -> None:
        self.members = members

    def pairs(self, items: Items) -> list[Pair]:
        pairs = [_pair(item) for item in items]
        for member in self.members:
            pairs = member.step(pairs)
        return pairs

    def __call__(self, items: Items) -> Items:
        return [node(data, path) for data, path in self.pairs(items)]


def flatten(items: Items) -> Items:
    """fhirpathpy's `flatten`: list items are spliced in (they only occur when a variable holds nested lists)."""
    if not any(isinstance(item, list) for item in items):
        return items
    out: Items = []
    for item in items:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out


def to_output(value: Any) -> Any:
    """The result as fhirpathpy's `evaluate` returns it: plain (copied) JSON, FP_* values kept, floats as Decimal,
    and objects that only carry an `extension` (the primitive-extension halves) left out of lists."""
    kind = type(value)
    if kind is list:
        out = []
        for item in value:
            converted = to_output(item)
            if type(converted) is dict and len(converted) == 1 and "extension" in converted:
                continue
            out.append(converted)
        return out
    if kind is ResourceNode:
        data = value.data
        # fhirpathpy copies what a node holds when it is an object, returns anything else as it is
        return to_output(data) if isinstance(data, dict | float) else data
    if kind is dict:
        return {key: to_output(item) for key, item in value.items()}
    if kind is float:
        return Decimal(str(value))
    if kind in _SCALARS or isinstance(value, FP_Type):
        return value
    return _reference_output(value)


def _reference_output(value: Any) -> Any:
    """fhirpathpy's own conversion, for values of other Python types (dict and list subclasses)."""
    data = value.data if isinstance(value, ResourceNode) else value
    if isinstance(data, float):
        data = Decimal(str(data))
    if isinstance(value, list):
        return [
            converted
            for converted in (to_output(item) for item in data)
            if not (isinstance(converted, dict) and list(converted) == ["extension"])
        ]
    if isinstance(data, dict) and not isinstance(data, FP_Type):
        return {key: to_output(item) for key, item in data.items()}
    return data

"""What validation has already found valid, so that the same JSON at the same place is not validated twice —
the memo and the quick path `validate_resource` takes before its two full passes (`known_valid_as`, `remember`).

An *item* is one value of one element — the element's value, or one entry of a repeating element — at a place
named by the model class that holds it and its JSON name (`Task`/`code`, `TaskRestriction`/`period`). Whether an
item is valid there depends on nothing else: the JSON walk checks it from its own content (kinds, names, nulls,
empties, control characters, the required binding of that place), and the R4B model validates a field's value
item by item, with the item's own type (a complex item is `model_validate`d by its class, a primitive by its
annotated type; no R4B field has a list-level constraint). What depends on the *set* of elements — required
elements, one value per choice `[x]` — is a function of which keys are present (`Shape`). So a resource whose
shape and every item were seen valid before is valid, with no model built; and because the key is the item's
exact JSON text, it can never go stale — an edited definition yields different JSON, hence different keys.

Keys are orjson text with a marker for Decimals (so `Decimal("1")` and `1`, different JSON kinds, differ); types
orjson would render like another (str/dict subclasses, datetimes, dataclasses) make `item_key` return None, and
so does any `null` in the text (a NaN float renders as null too): such items are always validated afresh.
Memory is bounded (`MAX_BYTES` of keys, oldest first out); items larger than `MAX_ITEM_BYTES` are not kept whole
but known element by element, like a complex item never seen whole (a Reference to a new id, a Period with new
dates): its shape and its own items, which is cheaper than its model.
"""

from __future__ import annotations

import threading
import typing
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from carepath.fhir.bindings import Binding
from carepath.fhir.elements import ElementSpec, elements, resource_model, unwrap_annotation
from carepath.fhir.json_walk import ID, TIME_QUANTITIES, Walk, bindings_of, contained_model

MAX_BYTES = 8 * 2**20
MAX_ITEM_BYTES = 4096
MAX_SHAPES = 4096
_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

ItemKey = tuple[type[BaseModel], str, bytes]
Shape = tuple[type[BaseModel], frozenset[str]]


def _marked(value: Any) -> Any:
    if type(value) is Decimal:
        return orjson.Fragment("D" + str(value))  # bare text no other JSON value can produce
    raise TypeError(type(value).__name__)


def item_key(model: type[BaseModel], name: str, item: Any) -> ItemKey | None:
    try:
        text = orjson.dumps(item, default=_marked, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if len(text) > MAX_ITEM_BYTES or b"null" in text:
        return None
    return (model, name, text)


@cache
def primitive_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """The validator the model applies to one item of the primitive element `name` (JSON name)."""
    field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
    leaf = unwrap_annotation(field.annotation)[0][0]
    return TypeAdapter(typing.cast(Any, leaf))


class ValidItems:
    """Item keys and shapes found valid, bounded; safe to share between threads."""

    def __init__(self) -> None:
        self._items: dict[ItemKey, None] = {}
        self._bytes = 0
        self._shapes: dict[Shape, None] = {}
        self._lock = threading.Lock()

    def has_item(self, key: ItemKey) -> bool:
        return key in self._items

    def has_shape(self, shape: Shape) -> bool:
        return shape in self._shapes

    def add_item(self, key: ItemKey) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = None
            self._bytes += len(key[2])
            while self._bytes > MAX_BYTES:
                oldest = next(iter(self._items))
                del self._items[oldest]
                self._bytes -= len(oldest[2])

    def add_shape(self, shape: Shape) -> None:
        with self._lock:
            self._shapes[shape] = None
            while len(self._shapes) > MAX_SHAPES:
                del self._shapes[next(iter(self._shapes))]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._shapes.clear()
            self._bytes = 0


VALID = ValidItems()


# --- the quick path -------------------------------------------------------------------------------------------


def known_valid(resource: dict[str, Any]) -> bool:
    """Whether the quick path alone vouches for `resource` (then `validate_resource` runs neither full pass)."""
    model = resource_model(str(resource.get("resourceType")))
    return model is not None and known_valid_as(resource, model)


def known_valid_as(node: dict[str, Any], model: type[BaseModel], resource: bool = True) -> bool:
    """True only if `node` (a resource, or with `resource=False` a complex element) is valid: its shape is known
    valid and each item is known or checks alone."""
    if not VALID.has_shape((model, frozenset(node))):
        return False
    rid = node.get("id")
    if resource and isinstance(rid, str) and not ID.fullmatch(rid):
        return False
    specs = elements(model)
    bindings = bindings_of(model)
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
        inner = contained_model(item)
        return inner is not None and "contained" not in item and known_valid_as(item, inner)
    key = item_key(model, name, item)
    if key is not None and VALID.has_item(key):
        return True
    inner = _element_model(spec, item)
    # A complex item not seen whole (a Reference to a new id, a Period with new dates) is often known element
    # by element, which is cheaper than its model; else the walk and the model check it alone.
    if inner is None or not known_valid_as(item, inner, resource=False) or not _binding_holds(item, binding, name):
        walk = Walk()
        walk.single(item, spec, name)
        if binding is not None:
            walk.binding(item, binding, name)
        if walk.issues or not _model_accepts(model, name, spec, item):
            return False
        if inner is not None:
            remember(item, inner)
    if key is not None:
        VALID.add_item(key)
    return True


def _binding_holds(item: Any, binding: Binding | None, name: str) -> bool:
    if binding is None:
        return True
    walk = Walk()
    walk.binding(item, binding, name)
    return not walk.issues


def _element_model(spec: ElementSpec, item: Any) -> type[BaseModel] | None:
    """The class of a complex item that can be known element by element (not a Duration or Age: their range
    check looks at values together)."""
    if spec.model is None or not isinstance(item, dict) or spec.model.__name__ in TIME_QUANTITIES:
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


def remember(node: dict[str, Any], model: type[BaseModel]) -> None:
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
                inner = contained_model(item)
                if inner is not None:
                    remember(item, inner)
            elif item is not None and (found := item_key(model, key, item)) is not None:
                VALID.add_item(found)
            elif (inner := _element_model(spec, item)) is not None:
                remember(item, inner)

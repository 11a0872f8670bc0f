"""What validation has already found valid, so that the same JSON at the same place is not validated twice.

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
Memory is bounded (`MAX_BYTES` of keys, oldest first out); items larger than `MAX_ITEM_BYTES` are not kept.
"""

from __future__ import annotations

import threading
import typing
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from carepath.fhir.elements import unwrap_annotation

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

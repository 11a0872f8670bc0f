"""Runtime pieces of compiled functions and operators, each mirroring the fhirpathpy code path it replaces.

Value semantics stay fhirpathpy's: operators and non-lambda functions call the functions of fhirpathpy's
invocation registry with the arguments fhirpathpy would pass (same parameter checks, same `nullable` rules).
The lambda functions (`where`, `select`, `exists(criteria)`, `all`, `aggregate`, `iif`) are re-implemented:
there the interpreter's cost lies, and their semantics are loops over the items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirpathpy.engine import check_boolean_param, check_integer_param, check_number_param, check_string_param
from fhirpathpy.engine.invocations import invocation_registry as _registry
from fhirpathpy.engine.nodes import ResourceNode, TypeInfo
from fhirpathpy.engine.util import get_data

from carepath.fhir.compiled.runtime import Fn, Frame, Items, Path, arraify, flatten, node

_CHECKS: dict[str, Callable[[Any], Any]] = {
    "Integer": check_integer_param,
    "Number": check_number_param,
    "Boolean": check_boolean_param,
    "String": check_string_param,
}
REGISTRY: dict[str, Any] = _registry  # fhirpathpy's functions and operators, by name
Param = Callable[[Items, Frame], Any]  # a parameter as fhirpathpy's `make_param` hands it to the function


def value_param(expr: Fn, arg_type: Any) -> Param:
    """`make_param` for a value parameter: the result as is ("Any"), or a checked singleton (or [] when empty)."""
    if arg_type == "Any":
        return expr
    optional = isinstance(arg_type, list)
    check = _CHECKS[arg_type[0] if optional else arg_type]

    def param(focus: Items, frame: Frame) -> Any:
        result = expr(focus, frame)
        if optional and not result:
            return []
        if len(result) > 1:
            raise ValueError(f"Unexpected collection; expected singleton of type {arg_type}")
        return check(result[0]) if result else []

    return param


def _nullable(value: Any) -> bool:
    return value is None or (isinstance(value, list) and not value)


def operator(name: str, left: Param, right: Param, ctx: dict[str, Any]) -> Fn:
    """An infix operator (`infix_invoke`): both operands on the same focus, then fhirpathpy's function."""
    entry = REGISTRY[name]
    fn, nullable = entry["fn"], "nullable" in entry

    def run(focus: Items, frame: Frame) -> Items:
        a, b = left(focus, frame), right(focus, frame)
        if nullable and (_nullable(a) or _nullable(b)):
            return []
        return arraify(fn(ctx, a, b))

    return run


def equals(left: Fn, right: Fn, ctx: dict[str, Any]) -> Fn:
    """`=`: two single strings compare as strings (what fhirpathpy's equality ends in for them), else fhirpathpy."""
    general = REGISTRY["="]["fn"]

    def run(focus: Items, frame: Frame) -> Items:
        a, b = left(focus, frame), right(focus, frame)
        if len(a) == 1 and len(b) == 1:
            x, y = _plain_string(a[0]), _plain_string(b[0])
            if x is not None and y is not None:
                return [x == y]
        if not a or not b:
            return []
        return arraify(general(ctx, a, b))

    return run


def path_equals(walk: Path, literal: str, ctx: dict[str, Any]) -> Fn:
    """`a.b = 'text'`: as `equals`, without making nodes of what the path reaches unless fhirpathpy must judge."""
    general = REGISTRY["="]["fn"]

    def run(focus: Items, frame: Frame) -> Items:
        pairs = walk.pairs(focus)
        if len(pairs) != 1:
            # none: empty; several: fhirpathpy's equality sees collections of different sizes
            return [False] if pairs else []
        data, path = pairs[0]
        if type(data) is str and path not in ("Quantity", "System.Quantity"):
            return [data == literal]
        return arraify(general(ctx, [node(data, path)], [literal]))

    return run


def _plain_string(item: Any) -> str | None:
    """The string an item holds, unless its type makes fhirpathpy's equality parse it (a Quantity)."""
    if type(item) is str:
        return item
    if type(item) is ResourceNode and type(item.data) is str and item.path not in ("Quantity", "System.Quantity"):
        return item.data
    return None


def invoke(name: str, params: list[Param], ctx: dict[str, Any], table: dict[str, Any]) -> Fn:
    """A non-lambda function (`doInvoke`): parameters are evaluated on `$this`, then fhirpathpy's function."""
    entry = table[name]
    fn, nullable_input, nullable = entry["fn"], "nullable_input" in entry, "nullable" in entry

    def run(focus: Items, frame: Frame) -> Items:
        if nullable_input and not focus:
            return []
        args = [param(frame.this, frame) for param in params]
        if nullable and (not focus or any(_nullable(arg) for arg in args)):
            return []
        return arraify(fn(ctx, focus, *args))

    return run


def of_type(wanted: TypeInfo) -> Fn:
    """`ofType(T)`: fhirpathpy's type test per item, remembered per FHIR type name (and model in force)."""
    known: dict[tuple[str, int], bool] = {}

    def matches(item: Any) -> bool:
        path = item.path if type(item) is ResourceNode else None
        if type(path) is not str or "." in path:
            return bool(TypeInfo.from_value(item).is_(wanted))  # type: ignore[no-untyped-call]
        key = (path, id(TypeInfo.model))  # fhirpathpy sets the model globally on the first `is`/`as`
        hit = known.get(key)
        if hit is None:
            hit = known[key] = bool(TypeInfo(path, TypeInfo.FHIR).is_(wanted))  # type: ignore[no-untyped-call]
        return hit

    def run(focus: Items, frame: Frame) -> Items:
        return [item for item in focus if matches(item)]

    return run


def host(call: Callable[[Frame], Callable[[Items], Items]]) -> Fn:
    """resolve(), now(), today(): the host's functions, given the item data as fhirpathpy's user table does."""

    def run(focus: Items, frame: Frame) -> Items:
        return arraify(call(frame)([get_data(item) for item in focus]))  # type: ignore[no-untyped-call]

    return run


def _each(body: Fn, frame: Frame, item: Any, index: int | None) -> Items:
    this, frame.this = frame.this, arraify(item)
    if index is not None:
        frame.index = index
    try:
        return body(frame.this, frame)
    finally:
        frame.this = this


def where(body: Fn) -> Fn:
    def run(focus: Items, frame: Frame) -> Items:
        saved = frame.index
        try:
            kept = [item for i, item in enumerate(focus) if _truthy(_each(body, frame, item, i))]
        finally:
            frame.index = saved
        return flatten(kept)

    return run


def _truthy(result: Items) -> bool:
    # fhirpathpy keeps an item when the first result is truthy in Python terms
    return bool(result[0]) if result else False


def exists(body: Fn) -> Fn:
    filtered = where(body)

    def run(focus: Items, frame: Frame) -> Items:
        return [bool(filtered(focus, frame))]

    return run


def select(body: Fn) -> Fn:
    def run(focus: Items, frame: Frame) -> Items:
        saved = frame.index
        try:
            return flatten([_each(body, frame, item, i) for i, item in enumerate(focus)])
        finally:
            frame.index = saved

    return run


def all_(body: Fn) -> Fn:
    def run(focus: Items, frame: Frame) -> Items:
        saved = frame.index
        try:
            # like fhirpathpy, stop at the first item that is not true (later items are not evaluated)
            return [all(_is_true(_each(body, frame, item, i)) for i, item in enumerate(focus))]
        finally:
            frame.index = saved

    return run


def aggregate(body: Fn, init: Param | None) -> Fn:
    def run(focus: Items, frame: Frame) -> Items:
        saved = frame.index, frame.total
        try:
            frame.total = init(frame.this, frame) if init is not None else None
            for i, item in enumerate(focus):
                frame.total = _each(body, frame, item, i)
            return arraify(frame.total)
        finally:
            frame.index, frame.total = saved

    return run


def iif(condition: Fn, then: Fn, otherwise: Fn | None) -> Fn:
    """`iif`: fhirpathpy evaluates the branches with `$this` = the whole input collection."""

    def run(focus: Items, frame: Frame) -> Items:
        this, frame.this = frame.this, focus
        try:
            if _is_true(condition(focus, frame)):
                return then(focus, frame)
            return otherwise(focus, frame) if otherwise is not None else []
        finally:
            frame.this = this

    return run


def _is_true(result: Items) -> bool:
    return len(result) == 1 and result[0] == True  # noqa: E712


def this(focus: Items, frame: Frame) -> Items:
    return frame.this


def index(focus: Items, frame: Frame) -> Items:
    return arraify(frame.index)


def total(focus: Items, frame: Frame) -> Items:
    return arraify(frame.total)

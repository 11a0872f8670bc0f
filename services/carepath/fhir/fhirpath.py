"""FHIRPath with the R4 model, compiled once and cached; shared by the engine and search extraction.

fhirpathpy does not implement `resolve()`. Ours returns the referenced resource when the caller supplies a
lookup (e.g. the `$apply` data Bundle), otherwise a stub `{"resourceType": T, "id": id}` built from the
reference string, which is all the spec's search expressions need (`subject.where(resolve() is Patient)`).

fhirpathpy's `now()`/`today()` read the wall clock; a caller that passes `now` (the `$apply` engine, whose tests
freeze time) gets that instant instead. `now_value(dt)` is the matching `%now` variable: fhirpathpy only does
correct date arithmetic (`%now + 3 days`) on a DateTime written with milliseconds and a `+hh:mm` offset.

Expressions inside the subset of `carepath.fhir.compiled` run as compiled closures (10-100x faster inside
`where()`); the rest, and any evaluation the compiled form cannot finish, run in fhirpathpy, so results and
errors are fhirpathpy's either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.invocations import datetime as builtin_clock
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_DateTime, ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from carepath.fhir.compiled import Fn, Frame, Invocation, arraify, compile_tree, to_output

R4_MODEL: dict[str, Any] = models["r4"]

Lookup = Callable[[str], dict[str, Any] | None]


class FhirPathError(ValueError):
    """An expression that does not parse or cannot be evaluated."""


def reference_stub(reference: str) -> dict[str, Any] | None:
    """`Patient/123`, `http://x/fhir/Patient/123/_history/2` -> {"resourceType": "Patient", "id": "123"}."""
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return {"resourceType": parts[-2], "id": parts[-1]}
    return None


def _make_resolve(lookup: Lookup | None) -> Callable[[list[Any]], list[Any]]:
    def resolve(inputs: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in inputs:
            ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
            if not isinstance(ref, str):
                continue
            found = (lookup(ref) if lookup else None) or reference_stub(ref)
            if found is not None:
                # A typed node, so that `resolve() is Patient` sees a FHIR Patient, not a System dict.
                out.append(ResourceNode.create_node(found, found["resourceType"]))  # type: ignore[no-untyped-call]
        return out

    return resolve


_STUB_RESOLVE_TABLE = {"resolve": {"fn": _make_resolve(None), "arity": {0: []}}}


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Callable[..., list[Any]]:
    try:
        compiled: Callable[..., list[Any]] = fhirpathpy.compile(
            expression, R4_MODEL, {"userInvocationTable": _STUB_RESOLVE_TABLE}
        )
        return compiled
    except Exception as exc:  # fhirpathpy raises bare Exceptions for syntax errors
        raise FhirPathError(f"Invalid FHIRPath expression {expression!r}: {exc}") from exc


@lru_cache(maxsize=4096)
def _compiled_with_slots(expression: str) -> Callable[..., list[Any]]:
    compiled: Callable[..., list[Any]] = fhirpathpy.compile(expression, R4_MODEL, {"userInvocationTable": _SLOT_TABLE})
    return compiled


# The lookup and clock of the evaluation in progress: evaluation is synchronous, so one slot per thread suffices.
_slot = threading.local()


def _slot_resolve(inputs: list[Any]) -> list[Any]:
    lookup: Lookup | None = getattr(_slot, "lookup", None)
    return _make_resolve(lookup)(inputs)


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def now_value(now: datetime) -> Any:
    """`now` as a FHIRPath DateTime that fhirpathpy can do arithmetic on (UTC, milliseconds, `+00:00`)."""
    text = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00"
    return FP_DateTime(text)  # type: ignore[no-untyped-call]


def _today_value(now: datetime | None) -> Any:
    return FP_DateTime(_utc(now).date().isoformat())  # type: ignore[no-untyped-call]


def _slot_now(inputs: list[Any]) -> list[Any]:
    return [now_value(_utc(getattr(_slot, "now", None)))]


def _slot_today(inputs: list[Any]) -> list[Any]:
    return [_today_value(getattr(_slot, "now", None))]


_SLOT_TABLE = {
    "resolve": {"fn": _slot_resolve, "arity": {0: []}},
    "now": {"fn": _slot_now, "arity": {0: []}},
    "today": {"fn": _slot_today, "arity": {0: []}},
}


def compile_expression(expression: str) -> None:
    """Raise FhirPathError if the expression does not parse (used to check content up front)."""
    _compiled(expression)


@lru_cache(maxsize=4096)
def _fast(expression: str) -> Fn | None:
    """The compiled form, or None outside the compiled subset (checked valid by fhirpathpy first)."""
    _compiled(expression)
    try:
        return compile_tree(parse(expression), R4_MODEL)  # type: ignore[no-untyped-call]
    except Exception:  # Unsupported, or a construct the compiler did not expect: fhirpathpy evaluates it
        return None


def _frame(resource: Any, variables: Mapping[str, Any] | None, lookup: Lookup | None, now: datetime | None) -> Frame:
    """What fhirpathpy's apply_parsed_path sets up: root, `%context`/`%ucum` and the caller's variables."""
    root = arraify(resource)
    names = {"context": resource, "ucum": "http://unitsofmeasure.org", **(variables or {})}
    if lookup is None and now is None:  # fhirpathpy's own clock functions, read once per evaluation
        constants.reset()  # type: ignore[no-untyped-call]
        clock: tuple[Invocation, Invocation] = (
            lambda items: arraify(builtin_clock.now(None, items)),  # type: ignore[no-untyped-call]
            lambda items: arraify(builtin_clock.today(None, items)),  # type: ignore[no-untyped-call]
        )
    else:
        clock = (lambda items: [now_value(_utc(now))], lambda items: [_today_value(now)])
    return Frame(names, root, _make_resolve(lookup), clock[0], clock[1], root)


def evaluate_compiled(
    resource: Any,
    expression: str,
    variables: Mapping[str, Any] | None = None,
    lookup: Lookup | None = None,
    now: datetime | None = None,
) -> list[Any] | None:
    """The compiled evaluation alone: None when the expression is outside the compiled subset; errors as raised.

    `evaluate` is what callers want; this exists so that tests can compare the compiled form with fhirpathpy.
    """
    fast = _fast(expression)
    if fast is None:
        return None
    frame = _frame(resource, variables, lookup, now)
    result: list[Any] = to_output(fast(frame.root, frame))
    return result


def evaluate(
    resource: Any,
    expression: str,
    variables: Mapping[str, Any] | None = None,
    lookup: Lookup | None = None,
    now: datetime | None = None,
) -> list[Any]:
    """Evaluate `expression` on `resource` with `%name` variables; always returns a list (FHIRPath collection).

    With `now`, the expression's `now()` and `today()` return that instant (in UTC) instead of the wall clock.
    """
    try:
        try:
            result = evaluate_compiled(resource, expression, variables, lookup, now)
        except Exception:  # fhirpathpy decides: it raises the same error (or answers, were the closure wrong)
            result = None
        return result if result is not None else evaluate_fhirpathpy(resource, expression, variables, lookup, now)
    except FhirPathError:
        raise
    except Exception as exc:  # fhirpathpy signals evaluation errors with bare Exceptions
        raise FhirPathError(f"Cannot evaluate {expression!r}: {exc}") from exc


def evaluate_fhirpathpy(
    resource: Any, expression: str, variables: Mapping[str, Any] | None, lookup: Lookup | None, now: datetime | None
) -> list[Any]:
    """fhirpathpy alone (bare exceptions), the reference the compiled form is tested against."""
    if lookup is None and now is None:
        return _compiled(expression)(resource, dict(variables or {}))
    fn = _compiled_with_slots(expression)
    _slot.lookup, _slot.now = lookup, now
    try:
        return fn(resource, dict(variables or {}))
    finally:
        _slot.lookup, _slot.now = None, None

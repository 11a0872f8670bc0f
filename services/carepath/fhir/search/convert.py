"""Typed FHIR values -> index rows, one converter per search-parameter type (search spec 3.1.1.4).

A value's FHIR type comes from the compiled path (see paths.py); when it is not known statically the shape of
the JSON decides. Text is clipped to the column widths of store/schema.py so that an over-long value can never
fail a write; query values are clipped the same way (see query.py), so equality still matches.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from carepath.fhir.search.dates import MAX_INSTANT, MIN_INSTANT, date_range
from carepath.fhir.search.rows import DateRow, QuantityRow, ReferenceRow, StringRow, TokenRow, UriRow

Row = TokenRow | StringRow | DateRow | ReferenceRow | QuantityRow | UriRow

# Column widths in store/schema.py.
TEXT_WIDTH, TOKEN_WIDTH, ID_WIDTH = 512, 255, 64


def clip(text: str, width: int) -> str:
    return text[:width]


def normalise(text: str) -> str:
    """FHIR string search ignores case and accents: NFKD, drop combining marks, casefold."""
    decomposed = unicodedata.normalize("NFKD", text)
    return clip("".join(c for c in decomposed if not unicodedata.combining(c)).casefold(), TEXT_WIDTH)


def _shape(value: Any) -> str | None:
    """Guess the FHIR type of a JSON value whose type the path did not tell."""
    if not isinstance(value, dict):
        return "boolean" if isinstance(value, bool) else "string"
    for keys, fhir_type in _SHAPES:
        if keys & value.keys():
            return fhir_type
    return None


_SHAPES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"reference"}), "Reference"),
    (frozenset({"coding"}), "CodeableConcept"),
    (frozenset({"family", "given"}), "HumanName"),
    (frozenset({"line", "city", "postalCode"}), "Address"),
    (frozenset({"start", "end"}), "Period"),
    (frozenset({"event", "repeat"}), "Timing"),
    (frozenset({"unit", "comparator"}), "Quantity"),
    (frozenset({"code"}), "Coding"),
    (frozenset({"value"}), "Identifier"),
)


# --- token -------------------------------------------------------------------------------------------------------
def _token(param: str, system: Any, code: Any) -> Iterator[TokenRow]:
    if isinstance(code, bool):
        code = "true" if code else "false"
    system = clip(system, TOKEN_WIDTH) if isinstance(system, str) else None
    code = clip(str(code), TOKEN_WIDTH) if isinstance(code, str | int | Decimal) else None
    if system is not None or code is not None:
        yield TokenRow(param, system, code)


def tokens(param: str, value: Any, fhir_type: str | None) -> Iterator[TokenRow]:
    fhir_type = fhir_type or _shape(value)
    if not isinstance(value, dict):
        yield from _token(param, None, value)
    elif fhir_type == "CodeableConcept":
        for coding in value.get("coding", ()):
            yield from _token(param, coding.get("system"), coding.get("code"))
    elif fhir_type in ("Identifier", "ContactPoint"):
        # ContactPoint.system (phone, email, ...) is the token system, as in other servers (`telecom=phone|555`).
        yield from _token(param, value.get("system"), value.get("value"))
    elif fhir_type == "Coding":
        yield from _token(param, value.get("system"), value.get("code"))


# --- string ------------------------------------------------------------------------------------------------------
_STRING_PARTS = {
    "HumanName": ("text", "family", "given", "prefix", "suffix"),
    "Address": ("text", "line", "city", "district", "state", "postalCode", "country"),
}


def strings(param: str, value: Any, fhir_type: str | None) -> Iterator[StringRow]:
    if isinstance(value, str):
        yield StringRow(param, normalise(value), clip(value, TEXT_WIDTH))
        return
    if not isinstance(value, dict):
        return
    for part in _STRING_PARTS.get(fhir_type or _shape(value) or "", ()):
        found = value.get(part)
        for text in found if isinstance(found, list) else [found]:
            if isinstance(text, str):
                yield StringRow(param, normalise(text), clip(text, TEXT_WIDTH))


# --- date --------------------------------------------------------------------------------------------------------
def dates(param: str, value: Any, fhir_type: str | None) -> Iterator[DateRow]:
    if isinstance(value, str):
        yield from _date(param, value)
        return
    if not isinstance(value, dict):
        return
    kind = fhir_type or _shape(value)
    if kind == "Period":
        start = _bounds(value.get("start"))
        end = _bounds(value.get("end"))
        if start or end:
            yield DateRow(param, start[0] if start else MIN_INSTANT, end[1] if end else MAX_INSTANT)
    elif kind == "Timing":
        for event in value.get("event", ()):
            yield from _date(param, event)


def _bounds(text: Any) -> tuple[Any, Any] | None:
    try:
        return date_range(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _date(param: str, text: str) -> Iterator[DateRow]:
    found = _bounds(text)
    if found is not None:
        yield DateRow(param, found[0], found[1])


# --- reference ---------------------------------------------------------------------------------------------------
def references(param: str, value: Any, fhir_type: str | None) -> Iterator[ReferenceRow]:
    ref = value.get("reference") if isinstance(value, dict) else value
    if isinstance(ref, str) and ref and not ref.startswith("#"):
        yield parse_reference(param, ref)


def parse_reference(param: str, ref: str) -> ReferenceRow:
    """`Type/id[/_history/v]` -> type and id; absolute URL, urn or canonical `url|version` -> url (+ version)."""
    if "://" in ref or ref.startswith("urn:"):
        url, _, canonical_version = ref.partition("|")
        return ReferenceRow(param, None, None, clip(url, TEXT_WIDTH), clip(canonical_version, ID_WIDTH) or None)
    parts = ref.split("/")
    versioned = len(parts) == 4 and parts[2] == "_history"
    if (len(parts) == 2 or versioned) and parts[0][:1].isupper():
        version = parts[3] if versioned else None
        return ReferenceRow(param, clip(parts[0], ID_WIDTH), clip(parts[1], ID_WIDTH), None, version)
    return ReferenceRow(param, None, clip(ref, ID_WIDTH), None, None)


# --- quantity and uri --------------------------------------------------------------------------------------------
def quantities(param: str, value: Any, fhir_type: str | None) -> Iterator[QuantityRow]:
    if not isinstance(value, dict) or "value" not in value or isinstance(value["value"], bool):
        return
    try:
        number = float(Decimal(str(value["value"])))
    except (InvalidOperation, ValueError):
        return
    code = value.get("code") or value.get("unit")  # spec: without a system, `code` may match the unit
    yield QuantityRow(param, number, value.get("system"), clip(code, ID_WIDTH) if isinstance(code, str) else None)


def uris(param: str, value: Any, fhir_type: str | None) -> Iterator[UriRow]:
    if isinstance(value, str):
        yield UriRow(param, clip(value, TEXT_WIDTH))


CONVERTERS: dict[str, Callable[[str, Any, str | None], Iterator[Row]]] = {
    "token": tokens,
    "string": strings,
    "date": dates,
    "reference": references,
    "quantity": quantities,
    "uri": uris,
}

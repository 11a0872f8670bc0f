"""Search values: one parsed alternative of a search parameter (search spec 3.1.1.4 - 3.1.1.5).

`status=requested,ready` is one criterion with two values (OR). Escapes `\\,` `\\|` `\\$` `\\\\` are honoured.
A value that does not parse is the client's error (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from carepath.errors import InvalidRequest
from carepath.fhir.search.convert import ID_WIDTH, TEXT_WIDTH, TOKEN_WIDTH, clip, parse_reference
from carepath.fhir.search.dates import date_range

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system
    code: str | None  # None: any code of `system` (`system|`)
    no_system: bool = False  # `|code`: the code without a system


@dataclass(frozen=True)
class StringValue:
    text: str


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: datetime
    high: datetime


@dataclass(frozen=True)
class ReferenceValue:
    target_type: str | None
    target_id: str | None
    url: str | None = None  # absolute URL or canonical without |version
    version: str | None = None  # canonical version


@dataclass(frozen=True)
class QuantityValue:
    prefix: str
    number: Decimal
    low: float  # the range implied by the number's precision: 5.4 -> [5.35, 5.45)
    high: float
    system: str | None
    code: str | None


@dataclass(frozen=True)
class UriValue:
    value: str


@dataclass(frozen=True)
class MissingValue:
    missing: bool


Value = TokenValue | StringValue | DateValue | ReferenceValue | QuantityValue | UriValue | MissingValue

_SPLIT_RE = re.compile(r"(?<!\\)(?:\\\\)*,")


def split_or(raw: str) -> list[str]:
    """Split on unescaped commas; the escapes themselves stay for the per-type parsers."""
    parts, start = [], 0
    for match in _SPLIT_RE.finditer(raw):
        parts.append(raw[start : match.end() - 1])
        start = match.end()
    parts.append(raw[start:])
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)


def _split_pipe(text: str) -> list[str]:
    return [_unescape(p) for p in re.split(r"(?<!\\)\|", text)]


def parse_token(raw: str) -> TokenValue:
    parts = _split_pipe(raw)
    if len(parts) == 1:
        return TokenValue(None, clip(parts[0], TOKEN_WIDTH))
    system, code = parts[0], "|".join(parts[1:])
    return TokenValue(clip(system, TOKEN_WIDTH) or None, clip(code, TOKEN_WIDTH) or None, no_system=not system)


def parse_string(raw: str) -> StringValue:
    return StringValue(clip(_unescape(raw), TEXT_WIDTH))


def parse_uri(raw: str) -> UriValue:
    return UriValue(clip(_unescape(raw), TEXT_WIDTH))


def _prefixed(raw: str) -> tuple[str, str]:
    head = raw[:2]
    if not head.isalpha():
        return "eq", raw
    if head not in PREFIXES:
        raise InvalidRequest(
            f"Unknown search prefix {head!r} in {raw!r}; expected one of {', '.join(sorted(PREFIXES))}"
        )
    return head, raw[2:]


def parse_date(raw: str) -> DateValue:
    prefix, text = _prefixed(raw)
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid date {raw!r}: expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.s]][Z|+hh:mm]]]]"
        ) from exc
    return DateValue(prefix, low, high)


def parse_quantity(raw: str) -> QuantityValue:
    prefix, text = _prefixed(raw)
    number_text, *rest = _split_pipe(text) if "|" in text else [_unescape(text)]
    try:
        number = Decimal(number_text)
    except InvalidOperation as exc:
        raise InvalidRequest(f"Invalid quantity {raw!r}: expected [prefix]number[|system|code]") from exc
    if not number.is_finite():
        raise InvalidRequest(f"Invalid quantity {raw!r}: the number must be finite")
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    system = rest[0] if len(rest) >= 1 and rest[0] else None
    code = rest[1] if len(rest) >= 2 and rest[1] else None
    return QuantityValue(prefix, number, float(number - half), float(number + half), system, code)


def parse_reference_value(raw: str, type_modifier: str | None, targets: tuple[str, ...]) -> ReferenceValue:
    """`Type/id`, `id`, an absolute URL or a canonical `url|version`; `:Type` fixes the type of a bare id."""
    text = _unescape(raw)
    if type_modifier is not None and "/" not in text:
        return ReferenceValue(type_modifier, clip(text, ID_WIDTH))
    row = parse_reference("", text)
    target_type = row.target_type or type_modifier
    if target_type is None and row.url is None and len(targets) == 1:
        target_type = targets[0]  # a bare id on a parameter with one target type
    if target_type is not None and targets and target_type not in targets:
        raise InvalidRequest(
            f"Reference {raw!r}: {target_type} is not a target of this parameter ({', '.join(targets)})"
        )
    if type_modifier is not None and target_type != type_modifier:
        raise InvalidRequest(f"Reference {raw!r} does not match the :{type_modifier} modifier")
    return ReferenceValue(target_type, row.target_id, row.url, row.version)


def parse_missing(raw: str) -> MissingValue:
    if raw not in ("true", "false"):
        raise InvalidRequest(f"The :missing modifier takes true or false, not {raw!r}")
    return MissingValue(raw == "true")

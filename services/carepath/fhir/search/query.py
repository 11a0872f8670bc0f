"""Parse the query of `GET /fhir/Type?...` into a pure SearchQuery (search spec 3.1.1).

Criteria AND across parameters (and across repetitions of one parameter), OR within comma-separated values.
Unknown or unsupported parameters are ignored and reported in `ignored` (lenient: R4 §3.1.1.4 says servers SHOULD
ignore them, and it is the default) or a 400 (strict, for `Prefer: handling=strict`); a malformed value is a 400
either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from carepath.errors import InvalidRequest
from carepath.fhir.models import is_supported, unsupported_reason
from carepath.fhir.search import values as v
from carepath.fhir.search.definitions import SearchParam, params_for
from carepath.fhir.search.includes import IncludeSpec, parse_include
from carepath.fhir.search.values import Value

SORTABLE_TYPES = frozenset({"date", "string", "token", "uri", "quantity", "number"})
_SUMMARY = frozenset({"true", "false", "text", "data", "count"})
_TOTAL = frozenset({"none", "estimate", "accurate"})
_TRANSPORT = frozenset({"_format", "_pretty"})  # answered by the API layer, not by the search
MAX_INT_PARAM = 2**31 - 1  # the largest _count/_offset taken; beyond it SQLite and asyncpg overflow (a 500)


@dataclass(frozen=True)
class Criterion:
    param: str
    type: str
    modifier: str | None  # exact | contains | not | missing | below | a resource type (`subject:Patient`)
    values: tuple[Value, ...]  # OR


@dataclass(frozen=True)
class SortKey:
    param: str
    type: str
    descending: bool = False


@dataclass(frozen=True)
class Ignored:
    """A parameter dropped under lenient handling: its name as sent (with any modifier), and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 20
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    summary: str | None = None
    total: str | None = None
    includes: tuple[IncludeSpec, ...] = ()
    revincludes: tuple[IncludeSpec, ...] = ()
    elements: tuple[str, ...] = ()
    ignored: tuple[Ignored, ...] = ()  # parameters dropped under lenient handling


_VALUE_PARSERS: dict[str, Callable[[str], Value]] = {
    "token": v.parse_token,
    "string": v.parse_string,
    "date": v.parse_date,
    "quantity": v.parse_quantity,
    "uri": v.parse_uri,
}


def parse_search(
    resource_type: str,
    pairs: Iterable[tuple[str, str]],
    *,
    default_count: int = 20,
    max_count: int = 500,
    strict: bool = True,
) -> SearchQuery:
    """`strict` (the safe default of the parser, kept for conditional criteria): unknown parameters are a 400.
    The search interaction passes the client's choice (lenient unless `Prefer: handling=strict`)."""
    if not is_supported(resource_type):
        raise InvalidRequest(unsupported_reason(resource_type))
    params = params_for(resource_type)
    criteria: list[Criterion] = []
    result: dict[str, list[str]] = {}
    ignored: list[Ignored] = []
    for name, raw in pairs:
        if "\x00" in name or "\x00" in raw:  # PostgreSQL cannot even compare text with U+0000: refuse it here
            raise InvalidRequest(f"Search parameter {name!r} contains a NUL character", expression=(name,))
        if name in _TRANSPORT:
            continue
        if name.split(":")[0] in _RESULT_PARAMS:
            result.setdefault(name, []).append(raw)
            continue
        try:
            criterion = parse_criterion(params, name, raw)
        except _Unknown as exc:
            if strict:
                raise InvalidRequest(str(exc)) from None
            ignored.append(Ignored(name, str(exc)))
            continue
        if criterion is not None:
            criteria.append(criterion)
    return _with_results(SearchQuery(resource_type, tuple(criteria), ignored=tuple(ignored)), result,
                         default_count, max_count, strict)  # fmt: skip


class _Unknown(Exception):
    """An unknown or unsupported parameter or modifier: 400 when strict, ignored when lenient."""


def parse_criterion(params: Mapping[str, SearchParam], name: str, raw: str) -> Criterion | None:
    code, _, modifier = name.partition(":")
    if "." in code or code == "_has":
        raise _Unknown(f"Chained and reverse-chained search ({name!r}) is not supported")
    param = params.get(code)
    if param is None:
        raise _Unknown(f"Unknown search parameter {code!r}; see the CapabilityStatement for the supported ones")
    mod = _check_modifier(param, modifier or None, name)
    alternatives = [a for a in v.split_or(raw) if a != ""]
    if not alternatives:
        return None  # an empty value is ignored (search spec 3.1.1.2)
    parsed = tuple(_parse_value(param, mod, a) for a in alternatives)
    if mod == "missing" and len(parsed) != 1:
        raise InvalidRequest(f"{name} takes a single true or false")
    return Criterion(param.code, param.type, mod, parsed)


def _check_modifier(param: SearchParam, modifier: str | None, name: str) -> str | None:
    if modifier is None:
        return None
    if param.type == "reference" and modifier[:1].isupper():
        if not is_supported(modifier) or (param.target and modifier not in param.target):
            raise InvalidRequest(f"{name}: {modifier} is not a target type of {param.code!r}")
        return modifier
    if modifier not in param.modifiers:
        raise _Unknown(f"Modifier :{modifier} is not supported on {param.type} parameter {param.code!r}")
    return modifier


def _parse_value(param: SearchParam, modifier: str | None, raw: str) -> Value:
    if modifier == "missing":
        return v.parse_missing(raw)
    if param.type == "reference":
        return v.parse_reference_value(raw, modifier, param.target)
    parser = _VALUE_PARSERS.get(param.type)
    if parser is None:
        raise _Unknown(f"Search parameter {param.code!r} of type {param.type} is not supported")
    return parser(raw)


# --- result parameters -------------------------------------------------------------------------------------------
_RESULT_PARAMS = frozenset({"_count", "_offset", "_sort", "_summary", "_total", "_include", "_revinclude",
                            "_elements", "_contained", "_containedType"})  # fmt: skip


def _with_results(
    query: SearchQuery, result: dict[str, list[str]], default_count: int, max_count: int, strict: bool
) -> SearchQuery:
    for name in result:
        if name not in _RESULT_HANDLED and strict:
            raise InvalidRequest(f"Search result parameter {name!r} is not supported")
    count = _int_param(result, "_count", default_count)
    return SearchQuery(
        resource_type=query.resource_type,
        criteria=query.criteria,
        count=min(count, max_count),
        offset=_int_param(result, "_offset", 0),
        sort=_sort(query.resource_type, result.get("_sort", [])),
        summary=_choice(result, "_summary", _SUMMARY),
        total=_choice(result, "_total", _TOTAL),
        includes=tuple(parse_include(query.resource_type, x, reverse=False) for x in _listed(result, "_include")),
        revincludes=tuple(parse_include(query.resource_type, x, reverse=True) for x in _listed(result, "_revinclude")),
        elements=tuple(e.strip() for e in _listed(result, "_elements") if e.strip()),
        ignored=query.ignored + _unhandled(result),
    )


def _unhandled(result: dict[str, list[str]]) -> tuple[Ignored, ...]:
    unhandled = (n for n in result if n not in _RESULT_HANDLED)
    return tuple(Ignored(n, f"Search result parameter {n!r} is not supported") for n in unhandled)


_RESULT_HANDLED = frozenset({"_count", "_offset", "_sort", "_summary", "_total", "_include", "_revinclude",
                             "_elements"})  # fmt: skip


def _last(result: dict[str, list[str]], name: str) -> str | None:
    found = result.get(name)
    return found[-1] if found else None


def _int_param(result: dict[str, list[str]], name: str, default: int) -> int:
    raw = _last(result, name)
    if raw is None or raw == "":
        return default
    # ASCII only: str.isdigit() also accepts "²", which int() refuses; the cap keeps it a database integer.
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_INT_PARAM:
        raise InvalidRequest(f"{name} must be a non-negative integer up to {MAX_INT_PARAM}, not {raw!r}")
    return int(raw)


def _choice(result: dict[str, list[str]], name: str, allowed: frozenset[str]) -> str | None:
    raw = _last(result, name)
    if raw is not None and raw not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(sorted(allowed))}, not {raw!r}")
    return raw


def _listed(result: dict[str, list[str]], name: str) -> list[str]:
    """Values of a repeatable result parameter; `_include` repeats, `_elements` and `_sort` are comma lists."""
    out: list[str] = []
    for raw in result.get(name, []):
        out.extend(raw.split(",") if name == "_elements" else [raw])
    return out


def _sort(resource_type: str, raws: Sequence[str]) -> tuple[SortKey, ...]:
    params = params_for(resource_type)
    keys: list[SortKey] = []
    for item in (s.strip() for raw in raws[-1:] for s in raw.split(",") if s.strip()):
        descending = item.startswith("-")
        code = item.lstrip("-")
        param = params.get(code)
        if param is None or param.type not in SORTABLE_TYPES:
            raise InvalidRequest(f"Cannot sort {resource_type} by {code!r}: not a date, string, token or uri parameter")
        keys.append(SortKey(code, param.type, descending))
    return tuple(keys)

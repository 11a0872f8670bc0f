"""JSON in and out without changing values.

FHIR decimals keep their precision: we parse numbers with a fraction as `Decimal` and write them back as the
same text (`1.50` stays `1.50`), so a stored resource is served exactly as it was received (plus id/meta).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from carepath.errors import InvalidRequest


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS if sort_keys else None)


def loads(raw: bytes | str) -> Any:
    """Parse JSON for the API; malformed input is the client's error (400), never a 500."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Malformed JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested arrays: the client's mistake, not a server error
        raise InvalidRequest("Malformed JSON: nested too deeply") from exc


# One nesting limit for every resource a client sends, checked on the raw text before anything recursive (the JSON
# parser, validation, reference rewriting) sees it. Validation survives about 300 levels; real FHIR resources use
# well under 40 (a transaction Bundle of PlanDefinitions with nested actions and extensions).
MAX_DEPTH = 100
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")


def check_depth(raw: bytes | str) -> None:
    """InvalidRequest when arrays/objects nest deeper than MAX_DEPTH, found without recursion.

    Strings are cut out (a bracket inside one does not count), then the remaining brackets are counted; a small
    document cannot nest deeply and skips the count. Unbalanced brackets are left to the parser to refuse.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKET):
        depth = depth + 1 if byte in _OPENING else depth - 1
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"The JSON nests arrays and objects deeper than {MAX_DEPTH} levels")


def loads_resource(raw: bytes | str) -> dict[str, Any]:
    check_depth(raw)
    value = loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise InvalidRequest("The body is not a FHIR resource: a JSON object with a resourceType is required")
    return value

"""JSON in and out without changing values.

FHIR decimals keep their precision: we parse numbers with a fraction as `Decimal` and write them back as the
same text (`1.50` stays `1.50`), so a stored resource is served exactly as it was received (plus id/meta).
"""

from __future__ import annotations

import json
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


def loads_resource(raw: bytes | str) -> dict[str, Any]:
    value = loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise InvalidRequest("The body is not a FHIR resource: a JSON object with a resourceType is required")
    return value

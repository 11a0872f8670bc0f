"""Time units of Duration/Age quantities, and the range of durations carepath accepts.

UCUM codes and the plain-English units seen in content. A duration longer than `MAX_YEARS` has no clinical
meaning and would push date arithmetic past the year 9999 (an overflow): validation refuses it when a
definition is stored, and the `$apply` engine refuses it (422) in content stored before this check existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

UNITS: dict[str, str] = {
    "ms": "milliseconds", "s": "seconds", "min": "minutes", "h": "hours", "d": "days", "wk": "weeks",
    "mo": "months", "a": "years",
}  # fmt: skip
_WORDS = {"millisecond": "ms", "second": "s", "minute": "min", "hour": "h", "day": "d", "week": "wk",
          "month": "mo", "year": "a"}  # fmt: skip
_DAYS = {"ms": 1 / 86_400_000, "s": 1 / 86_400, "min": 1 / 1_440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30.4375,
         "a": 365.25}  # fmt: skip
MAX_YEARS = 1000


def time_unit(quantity: Mapping[str, Any]) -> str | None:
    """The UCUM code of a Duration/Age quantity's unit (`code`, else `unit`, plain words allowed), or None."""
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip().lower()
    unit = unit if unit in UNITS else _WORDS.get(unit.rstrip("s"), unit)
    return unit if unit in UNITS else None


def number(quantity: Mapping[str, Any]) -> float | None:
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return float(value)


def out_of_range(quantity: Mapping[str, Any]) -> bool:
    """True for a time quantity longer than MAX_YEARS either way (an unknown unit is not judged here)."""
    unit, value = time_unit(quantity), number(quantity)
    if unit is None or value is None:
        return False
    return not abs(value) * _DAYS[unit] <= MAX_YEARS * 365.25  # also true for nan and inf

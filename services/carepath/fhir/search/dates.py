"""FHIR date/dateTime/instant text -> the naive-UTC instant range [low, high) it covers.

FHIR dates carry their precision (search spec 3.1.1.4.2, "date"): "2024" is the whole year, "2024-03" the whole
month, "2024-03-05T10:00" the whole minute. Index rows and search values both become [low, high) ranges, so that
the prefixes (eq, lt, sa, ...) compare ranges the way the spec describes. A value without a timezone is taken as
UTC (FHIR requires one on times; for plain dates the spec leaves it to the server).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from carepath.errors import InvalidRequest

# Open ends of a Period; inside both SQLite's and PostgreSQL's timestamp ranges.
MIN_INSTANT = datetime(1, 1, 1)
MAX_INSTANT = datetime(9999, 12, 31, 23, 59, 59)

_DATE_RE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def date_range(text: str) -> tuple[datetime, datetime]:
    """The [low, high) naive-UTC range of a FHIR date, dateTime or instant; ValueError if it is not one."""
    match = _DATE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a FHIR date/dateTime: {text!r}")
    y, m, d, hh, mm, ss, fraction, tz = match.groups()
    micro = int((fraction[1:] + "00000")[:6]) if fraction else 0
    local = datetime(int(y), int(m or 1), int(d or 1), int(hh or 0), int(mm or 0), int(ss or 0), micro)
    if d is None:  # year or month precision: calendar arithmetic, and no time zone can be given
        year, month = (int(y) + 1, 1) if m is None or m == "12" else (int(y), int(m) + 1)
        return local, datetime(year, month, 1) if year <= MAX_INSTANT.year else MAX_INSTANT
    low = _to_utc(local, tz)
    return low, _add(low, _precision_step(hh, ss, fraction))


def _precision_step(hh: str | None, ss: str | None, fraction: str | None) -> timedelta:
    if fraction:
        return timedelta(microseconds=10 ** (6 - min(len(fraction) - 1, 6)))
    if ss is not None:
        return _SECOND
    return _MINUTE if hh is not None else _DAY


_SECOND, _MINUTE, _DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(days=1)


def _to_utc(local: datetime, tz: str | None) -> datetime:
    if not tz or tz == "Z":
        return local
    sign = 1 if tz[0] == "+" else -1
    offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    try:
        return local.replace(tzinfo=timezone(sign * offset)).astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # year 1 minus an offset; clamp instead of failing on an edge no one searches
        return MIN_INSTANT


def _add(low: datetime, step: timedelta) -> datetime:
    try:
        return min(low + step, MAX_INSTANT)
    except OverflowError:
        return MAX_INSTANT


def parse_instant(text: str) -> datetime:
    """A client-supplied instant (e.g. `_since`) as naive UTC; a malformed one is the client's error (400)."""
    try:
        return date_range(text)[0]
    except ValueError as exc:
        raise InvalidRequest(f"Invalid date/time {text!r}: expected e.g. 2024-03-05T10:00:00Z") from exc

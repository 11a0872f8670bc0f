"""Timing arithmetic: `timing[x]` and `relatedAction` resolved against `now` into concrete intervals.

An action's interval is [start, end]; `end` is the due date. Without timing an action inherits its parent's
interval (the root's is [now, open]). Relative timings (Duration, Range, Timing bounds) count from the parent's
start; `timingAge` counts from the patient's birth date when the data has one, else from now.

relatedAction (R4 action-relationship-type), T being the predecessor's start or end, offset [lo, hi]
(offsetDuration: lo = hi; offsetRange: low/high):
    after-start / after / after-end     start at T + lo (T = start for after-start, else end), due T + hi
    before-start / before / before-end  due at T - lo (T = end for before-end, else start), start T - hi
    concurrent-with-start / -with-end   start (resp. due) at T + lo
    concurrent                          the predecessor's interval
When the window is a single instant and the action has its own timing of some length L (e.g. timingDuration),
the window is stretched by L away from T (due = start + L after T; start = due - L before T).
A predecessor without a due date is anchored at its start: the due date is provisional, the workflow
re-computes it once the predecessor completes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.parser import isoparse
from dateutil.relativedelta import relativedelta

from carepath.errors import BusinessRuleViolation
from carepath.fhir.durations import MAX_YEARS, UNITS, out_of_range, time_unit
from carepath.fhir.durations import number as quantity_number


@dataclass(frozen=True)
class Interval:
    start: datetime | None
    end: datetime | None

    @property
    def due_or_start(self) -> datetime | None:
        return self.end or self.start


def parse_instant(value: str) -> datetime:
    """A FHIR date/dateTime/instant as an aware UTC datetime (a date means its midnight UTC)."""
    parsed: datetime = isoparse(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def duration(quantity: Mapping[str, Any], where: str) -> relativedelta:
    """A Duration/Age quantity as a calendar-aware delta (months and years are calendar units)."""
    unit, number = time_unit(quantity), quantity_number(quantity)
    if unit is None or number is None:
        raise BusinessRuleViolation(f"Cannot use {dict(quantity)!r} as a duration", expression=(where,))
    if out_of_range(quantity):
        raise BusinessRuleViolation(f"The duration {dict(quantity)!r} is longer than {MAX_YEARS} years",
                                    expression=(where,))  # fmt: skip
    if unit in ("mo", "a"):
        months = number * (12 if unit == "a" else 1)
        return relativedelta(months=int(months), days=round((months - int(months)) * 30))
    return relativedelta(**{UNITS[unit]: number})


def _range(range_: Mapping[str, Any], where: str) -> tuple[relativedelta, relativedelta]:
    low = duration(range_["low"], where) if "low" in range_ else relativedelta()
    high = duration(range_["high"], where) if "high" in range_ else low
    return low, high


def _period(period: Mapping[str, Any]) -> Interval:
    start, end = period.get("start"), period.get("end")
    return Interval(parse_instant(start) if start else None, parse_instant(end) if end else None)


def own_interval(element: Mapping[str, Any], anchor: datetime, birth_date: date | None, where: str) -> Interval | None:
    """The interval an element's own `timing[x]` describes, or None when it has no (usable) timing."""
    where = f"{where}.timing"
    if "timingDateTime" in element:
        at = parse_instant(element["timingDateTime"])
        return Interval(at, at)
    if "timingPeriod" in element:
        return _period(element["timingPeriod"])
    if "timingDuration" in element:
        return Interval(anchor, anchor + duration(element["timingDuration"], where))
    if "timingAge" in element:
        base = datetime(birth_date.year, birth_date.month, birth_date.day, tzinfo=UTC) if birth_date else anchor
        at = base + duration(element["timingAge"], where)
        return Interval(at, at)
    if "timingRange" in element:
        low, high = _range(element["timingRange"], where)
        return Interval(anchor + low, anchor + high)
    repeat = (element.get("timingTiming") or {}).get("repeat") or {}
    if "boundsDuration" in repeat:
        return Interval(anchor, anchor + duration(repeat["boundsDuration"], where))
    if "boundsPeriod" in repeat:
        return _period(repeat["boundsPeriod"])
    if "boundsRange" in repeat:
        low, high = _range(repeat["boundsRange"], where)
        return Interval(anchor + low, anchor + high)
    return None


def _offsets(related: Mapping[str, Any], where: str) -> tuple[relativedelta, relativedelta]:
    if "offsetDuration" in related:
        offset = duration(related["offsetDuration"], where)
        return offset, offset
    if "offsetRange" in related:
        return _range(related["offsetRange"], where)
    return relativedelta(), relativedelta()


_AFTER = {"after-start": "start", "concurrent-with-start": "start", "after": "end", "after-end": "end"}
_BEFORE = {"before-start": "start", "before": "start", "before-end": "end", "concurrent-with-end": "end"}


def related_interval(
    related: Mapping[str, Any], predecessor: Interval, length: timedelta | None, now: datetime, where: str
) -> Interval:
    """The interval one relatedAction imposes, given the predecessor's (final) interval."""
    relationship = related.get("relationship")
    if relationship == "concurrent":
        return predecessor
    lo, hi = _offsets(related, where)
    edges = {"start": predecessor.start or now, "end": predecessor.due_or_start or now}
    stretch = length or timedelta(0)
    if relationship in _AFTER:
        t = edges[_AFTER[relationship]]
        return Interval(t + lo, t + hi if lo != hi else t + lo + stretch)
    if relationship in _BEFORE:
        t = edges[_BEFORE[relationship]]
        if relationship == "concurrent-with-end":
            lo, hi = -lo, -hi  # an offset moves the due date later, not earlier
        return Interval(t - hi if lo != hi else t - lo - stretch, t - lo)
    raise BusinessRuleViolation(
        f"Unknown relatedAction.relationship {relationship!r}", expression=(f"{where}.relationship",)
    )


def combine(intervals: list[Interval]) -> Interval:
    """Several relatedAction constraints: the latest start and the latest due date win."""
    starts = [i.start for i in intervals if i.start is not None]
    ends = [i.end for i in intervals if i.end is not None]
    return Interval(max(starts) if starts else None, max(ends) if ends else None)

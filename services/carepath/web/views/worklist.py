"""The worklist as values: filters read from the URL, the FHIR search they amount to, and the rows shown.

Due windows are disjoint, so their counts add up: overdue (an open Task due before now), today (from now to
midnight), this week (the next six days after today), upcoming (later). Days are the hospital's
(`CAREPATH_TIMEZONE`), so "today" ends at local midnight, not UTC's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from carepath.errors import InvalidRequest
from carepath.web.views.fhir import (
    FINAL,
    OPEN,
    Resource,
    concept_text,
    due,
    ended,
    label,
    patient_name,
    practitioner_name,
    reference_id,
)

STATUSES = ("open", "all", *OPEN, *sorted(FINAL))
PRIORITIES = ("routine", "urgent", "asap", "stat")
WINDOWS = ("overdue", "today", "week", "upcoming")
PAGE_SIZE = 50
UNASSIGNED = "none"


@dataclass(frozen=True)
class Filters:
    """What the worklist's GET form carries; every field a query parameter of `/app`."""

    status: str = "open"
    owner: str = ""  # a Practitioner id, "none" for unassigned, "" for anyone
    role: str = ""  # a performerType token, system|code
    priority: str = ""
    patient: str = ""  # a Patient id
    due: str = ""  # one of WINDOWS, "" for any
    page: int = 1

    def query(self, **changes: object) -> str:
        """This filter set (with `changes`) as a query string, defaults left out so URLs stay short."""
        values = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [(k, str(v)) for k, v in vars(values).items() if v not in ("", None) and (k, v) not in _DEFAULTS]
        return urlencode(pairs)


_DEFAULTS = {("status", "open"), ("page", 1)}


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Filters from the query string. A value outside its list is refused (400), not ignored: a misspelled
    filter that silently shows everything on a worklist is a safety risk."""
    status = params.get("status") or "open"
    priority = params.get("priority") or ""
    window = params.get("due") or ""
    _one_of("status", status, STATUSES)
    if priority:
        _one_of("priority", priority, PRIORITIES)
    if window:
        _one_of("due", window, WINDOWS)
    page_text = params.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= 10_000:
        raise InvalidRequest(f"page must be a number from 1, got {page_text!r}", expression=("page",))
    ident = {k: params.get(k) or "" for k in ("owner", "patient")}
    for key, value in ident.items():
        if value and not value.replace("-", "").replace(".", "").isalnum():
            raise InvalidRequest(f"{key} must be a FHIR id, got {value!r}", expression=(key,))
    role = params.get("role") or ""
    if role and "|" not in role:
        raise InvalidRequest(f"role must be a system|code token, got {role!r}", expression=("role",))
    return Filters(status, ident["owner"], role, priority, ident["patient"], window, int(page_text))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}, got {value!r}", expression=(name,))


def window_bounds(now: datetime, tz: ZoneInfo) -> dict[str, tuple[datetime | None, datetime | None]]:
    """[start, end) of each due window, in UTC; days begin at local midnight in `tz`."""
    local_today = now.astimezone(tz).date()
    tomorrow = datetime.combine(local_today + timedelta(days=1), time(), tz).astimezone(UTC)
    week_end = datetime.combine(local_today + timedelta(days=7), time(), tz).astimezone(UTC)
    now_utc = now.astimezone(UTC)
    return {"overdue": (None, now_utc), "today": (now_utc, tomorrow), "week": (tomorrow, week_end),
            "upcoming": (week_end, None)}  # fmt: skip


def _fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_pairs(filters: Filters, now: datetime, tz: ZoneInfo, *, window: str | None = None) -> list[tuple[str, str]]:
    """The Task search (FHIR parameters) for these filters, without paging; `window` overrides the due window."""
    pairs: list[tuple[str, str]] = []
    if filters.status == "open":
        pairs.append(("status", ",".join(s for s in OPEN if s != "draft")))
    elif filters.status != "all":
        pairs.append(("status", filters.status))
    if filters.owner == UNASSIGNED:
        pairs.append(("owner:missing", "true"))
    elif filters.owner:
        pairs.append(("owner", f"Practitioner/{filters.owner}"))
    if filters.role:
        pairs.append(("performer", filters.role))
    if filters.priority:
        pairs.append(("priority", filters.priority))
    if filters.patient:
        pairs.append(("subject", f"Patient/{filters.patient}"))
    chosen = window if window is not None else filters.due
    if chosen:
        start, end = window_bounds(now, tz)[chosen]
        if start is not None:
            pairs.append(("due-date", f"ge{_fhir_instant(start)}"))
        if end is not None:
            pairs.append(("due-date", f"lt{_fhir_instant(end)}"))
    return pairs


def due_state(task: Resource, now: datetime, tz: ZoneInfo) -> str:
    """done, closed, overdue, today, week, upcoming or none — what the due column says in words."""
    if (closed := ended(task)) is not None:
        return closed
    moment = due(task)
    if moment is None:
        return "none"
    for name, (start, end) in window_bounds(now, tz).items():
        if (start is None or moment >= start) and (end is None or moment < end):
            return name
    return "none"


@dataclass(frozen=True)
class Row:
    task_id: str
    version: str
    title: str
    status: str
    priority: str
    urgent: bool  # priority above routine: shown with a word and a mark, not only a colour
    due: datetime | None
    due_state: str
    owner: str
    role: str
    patient_id: str
    patient: str


def rows(tasks: list[Resource], related: Mapping[str, Resource], now: datetime, tz: ZoneInfo) -> list[Row]:
    """The table rows; `related` maps `Patient/x` / `Practitioner/y` to the resources the page may name."""
    out = []
    for task in tasks:
        patient_id = reference_id(task.get("for"), "Patient") or ""
        owner_ref = (task.get("owner") or {}).get("reference")
        owner = practitioner_name(related.get(owner_ref)) if isinstance(owner_ref, str) else ""
        owner = owner or str((task.get("owner") or {}).get("display") or "")
        priority = str(task.get("priority") or "routine")
        out.append(Row(
            task_id=str(task["id"]), version=str((task.get("meta") or {}).get("versionId", "")), title=label(task),
            status=str(task.get("status", "")), priority=priority, urgent=priority != "routine", due=due(task),
            due_state=due_state(task, now, tz), owner=owner,
            role=", ".join(concept_text(c) for c in task.get("performerType", [])),
            patient_id=patient_id, patient=patient_name(related.get(f"Patient/{patient_id}")),
        ))  # fmt: skip
    return out

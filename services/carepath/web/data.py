"""What each page reads, through the same search parser and store queries as the FHIR API's search (strict,
like `Prefer: handling=strict`: a parameter the server does not know is an error here, never silently dropped)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from carepath.errors import Gone, NotFound
from carepath.fhir.search.query import SearchQuery, parse_search
from carepath.settings import Settings
from carepath.store.generations import cached
from carepath.store.repository import StoreTransaction
from carepath.web.counts import worklist_counts
from carepath.web.views.fhir import Resource, concept_text, patient_name, practitioner_name, reference_id, waits_for
from carepath.web.views.worklist import PAGE_SIZE, WINDOWS, Filters, search_pairs

DUE = "due-date"  # the Task parameter the due windows are on
MANY = 500  # a patient's or a plan's Tasks, practitioners for the owner list: more is not a worklist


def _query(settings: Settings, res_type: str, pairs: list[tuple[str, str]]) -> SearchQuery:
    return parse_search(res_type, pairs, default_count=settings.default_page_size, max_count=settings.max_page_size,
                        strict=True)  # fmt: skip


async def search_resources(
    tx: StoreTransaction, settings: Settings, res_type: str, pairs: list[tuple[str, str]]
) -> tuple[list[Resource], dict[str, Resource], bool]:
    """(matches, `_include`d resources by `Type/id`, whether there is a next page)."""
    query = _query(settings, res_type, pairs)
    found = await tx.search(replace(query, count=query.count + 1))
    matches = [stored.json() for _, stored in found[: query.count]]
    included: dict[str, Resource] = {}
    rids = [rid for rid, _ in found[: query.count]]
    for spec in query.includes:
        for _, stored in await tx.related(spec, rids, reverse=False):
            included[stored.relative_url] = stored.json()
    return matches, included, len(found) > query.count


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class WorklistData:
    tasks: list[Resource]
    related: dict[str, Resource]
    has_next: bool
    total: int
    window_counts: dict[str, int]
    owners: list[Option]
    patients: list[Option]
    roles: list[Option]


async def worklist(tx: StoreTransaction, settings: Settings, filters: Filters, now: datetime, tz: ZoneInfo
                   ) -> WorklistData:  # fmt: skip
    pairs = search_pairs(filters, now, tz)
    page = [*pairs, ("_sort", "due-date"), ("_count", str(PAGE_SIZE)), ("_offset", str((filters.page - 1) * PAGE_SIZE)),
            ("_include", "Task:subject"), ("_include", "Task:owner")]  # fmt: skip
    tasks, related, has_next = await search_resources(tx, settings, "Task", page)

    total, windows = await worklist_counts(tx, filters, now, tz, lambda: _counts(tx, settings, filters, now, tz))
    return WorklistData(tasks, related, has_next, total, windows, *await _options(tx, settings))


async def _counts(tx: StoreTransaction, settings: Settings, filters: Filters, now: datetime, tz: ZoneInfo
                  ) -> tuple[int, dict[str, int]]:  # fmt: skip
    """(matches, matches per due window) in one query: each matching Task's due-date row tested against every
    window's bounds, as the window's own search would (its `due-date` criteria, from search_pairs). The same as
    one count per window because `due-date` is Task.restriction.period.end, at most one value in R4 (restriction,
    period and end are all 0..1): a Task is in a window exactly when its one row is. No due date: in no window."""
    unwindowed = _query(settings, "Task", search_pairs(replace(filters, due=""), now, tz))
    bounds = {w: _query(settings, "Task", search_pairs(filters, now, tz, window=w)).criteria for w in WINDOWS}
    buckets = {w: [c for c in criteria if c.param == DUE] for w, criteria in bounds.items()}
    total, windows = await tx.bucket_counts(unwindowed, DUE, buckets)
    return (windows[filters.due] if filters.due else total), windows


Options = tuple[list[Option], list[Option], list[Option]]
_OPTION_TYPES = ("Practitioner", "Patient", "ActivityDefinition")


async def _options(tx: StoreTransaction, settings: Settings) -> Options:
    """The filters' option lists, kept while no process changed a resource they are read from (store/generations.py):
    reading and parsing 500 Patients is a third of a worklist page's time otherwise."""
    return await cached(tx.generations, "worklist-options", _OPTION_TYPES, lambda: _read_options(tx, settings))


async def _read_options(tx: StoreTransaction, settings: Settings) -> Options:
    """The choices of the owner, patient and role filters: the Practitioners, the Patients, and the roles the
    pathway's definitions assign work to (coded `participant.role`, what `Task.performerType` is filled from)."""
    practitioners, _, _ = await search_resources(tx, settings, "Practitioner", [("_count", str(MANY))])
    patients, _, _ = await search_resources(tx, settings, "Patient", [("_count", str(MANY)), ("_sort", "family")])
    definitions, _, _ = await search_resources(tx, settings, "ActivityDefinition", [("_count", str(MANY))])
    roles: dict[str, str] = {}
    for definition in definitions:
        for participant in definition.get("participant", []):
            role = participant.get("role") or {}
            for coding in role.get("coding", []):
                if coding.get("system") and coding.get("code"):
                    roles.setdefault(f"{coding['system']}|{coding['code']}", concept_text(role))
    return (
        sorted((Option(str(p["id"]), practitioner_name(p)) for p in practitioners), key=lambda o: o.label),
        [Option(str(p["id"]), patient_name(p)) for p in patients],
        sorted((Option(k, v) for k, v in roles.items()), key=lambda o: o.label),
    )


@dataclass(frozen=True)
class TaskData:
    task: Resource
    version: int
    patient: Resource | None
    owner: Resource | None
    careplan: Resource | None
    siblings: list[Resource]
    others: dict[str, Resource]  # the Tasks it waits for, by reference
    versions: list[Resource]
    provenances: list[Resource]
    practitioners: list[Option]


async def task_page(tx: StoreTransaction, settings: Settings, task_id: str) -> TaskData:
    stored = await tx.read("Task", task_id)
    task = stored.json()
    patient = await _maybe(tx, "Patient", reference_id(task.get("for"), "Patient"))
    owner = await _maybe(tx, "Practitioner", reference_id(task.get("owner"), "Practitioner"))
    plan_ref = next((b for b in task.get("basedOn", []) if reference_id(b, "CarePlan")), None)
    careplan = await _maybe(tx, "CarePlan", reference_id(plan_ref, "CarePlan"))
    siblings: list[Resource] = []
    if careplan is not None:
        siblings, _, _ = await search_resources(tx, settings, "Task", [("based-on", f"CarePlan/{careplan['id']}"),
                                                                       ("_count", str(MANY))])  # fmt: skip
    others = {f"Task/{s['id']}": s for s in siblings}
    for ref in waits_for(task):
        if ref not in others:
            found = await _maybe(tx, "Task", ref.split("/")[-1])
            if found is not None:
                others[ref] = found
    versions, _ = await tx.history("Task", task_id, since=None, count=MANY, offset=0)
    provenances, _, _ = await search_resources(tx, settings, "Provenance", [("target", f"Task/{task_id}"),
                                                                            ("_count", str(MANY))])  # fmt: skip
    practitioners, _, _ = await search_resources(tx, settings, "Practitioner", [("_count", str(MANY))])
    options = sorted((Option(str(p["id"]), practitioner_name(p)) for p in practitioners), key=lambda o: o.label)
    return TaskData(task, stored.version, patient, owner, careplan, siblings, others,
                    [v.json() for v in versions if not v.deleted], provenances, options)  # fmt: skip


@dataclass(frozen=True)
class PlanData:
    careplan: Resource
    plan: Resource | None
    tasks: list[Resource]


async def patient_page(tx: StoreTransaction, settings: Settings, patient_id: str) -> tuple[Resource, list[PlanData]]:
    patient = (await tx.read("Patient", patient_id)).json()
    careplans, _, _ = await search_resources(tx, settings, "CarePlan", [("subject", f"Patient/{patient_id}"),
                                                                        ("_count", "50")])  # fmt: skip
    out = []
    for careplan in careplans:
        tasks, _, _ = await search_resources(tx, settings, "Task", [("based-on", f"CarePlan/{careplan['id']}"),
                                                                    ("_count", str(MANY))])  # fmt: skip
        canonical = next(iter(careplan.get("instantiatesCanonical", [])), None)
        plan = await tx.find_definition("PlanDefinition", canonical) if canonical else None
        out.append(PlanData(careplan, plan, tasks))
    return patient, out


async def _maybe(tx: StoreTransaction, res_type: str, res_id: str | None) -> Resource | None:
    """The current version, or None when absent or deleted (a page still shows the rest)."""
    if res_id is None:
        return None
    try:
        return (await tx.read(res_type, res_id)).json()
    except (NotFound, Gone):
        return None

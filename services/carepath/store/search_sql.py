"""SearchQuery -> SQLAlchemy Core selects over `resource` and the sp_* index tables; one SQL for SQLite and PostgreSQL.

Each criterion is an EXISTS on one index table, correlated on `rid` and led by (res_type, param, value), which the
sp_* indexes cover. Sorting uses a correlated aggregate per matched row (min(low) ascending, max(high) descending
for dates, FHIR 3.1.1.4.2) with missing values last and `rid` as the stable tie-break. `_id` and `_lastUpdated` come
from the resource table's own columns. Date prefixes compare [low, high) ranges as the search spec describes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
    union,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from carepath.fhir.search.convert import normalise
from carepath.fhir.search.definitions import RESOURCE_COLUMN_PARAMS, params_for
from carepath.fhir.search.includes import IncludeSpec
from carepath.fhir.search.query import Criterion, SearchQuery, SortKey
from carepath.fhir.search.values import (
    DateValue,
    MissingValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)
from carepath.store.schema import resource, sp_date, sp_quantity, sp_reference, sp_string, sp_token, sp_uri

RESULT_COLUMNS = (
    resource.c.rid, resource.c.res_type, resource.c.res_id, resource.c.version, resource.c.last_updated,
    resource.c.deleted, resource.c.content,
)  # fmt: skip

_TABLES = {"token": sp_token, "string": sp_string, "date": sp_date, "reference": sp_reference,
           "quantity": sp_quantity, "uri": sp_uri}  # fmt: skip

Cond = ColumnElement[bool]


def build_search(query: SearchQuery) -> Select[Any]:
    """One page of matches: RESULT_COLUMNS, sorted, LIMIT count OFFSET offset.

    The page is chosen on index data alone (rid and sort keys) and only its rows' content is read: sorting wide
    rows, or reading `resource` for every candidate, is what made a worklist search slow on 100k Tasks.
    """
    candidates, rid = _candidates(query)
    keys = [_sort_key(query.resource_type, sort, rid).label(f"k{i}") for i, sort in enumerate(query.sort)]
    page = (
        select(rid.label("rid"), *keys)
        .distinct()  # a resource can match through several rows of the driving index table
        .where(*candidates)
        .order_by(*_directions(query.sort, keys), rid)
        .limit(query.count)
        .offset(query.offset)
        .subquery("page")
    )
    page_keys = [page.c[f"k{i}"] for i in range(len(keys))]
    return (
        select(*RESULT_COLUMNS)
        .join_from(resource, page, page.c.rid == resource.c.rid)
        .where(resource.c.deleted == false())
        .order_by(*_directions(query.sort, page_keys), page.c.rid)
    )


def build_count(query: SearchQuery) -> Select[Any]:
    """The number of matches (`_summary=count`, `Bundle.total`)."""
    candidates, rid = _candidates(query)
    return select(func.count(rid.distinct())).where(*candidates)


def build_bucket_counts(query: SearchQuery, param: str, buckets: Mapping[str, Sequence[Criterion]]) -> Select[Any]:
    """In one pass: the number of matches (column `total`), and per bucket (a column named after it) the number of
    matches whose value of the date parameter `param` meets all of that bucket's criteria on `param`.

    Each match is joined to its index row of `param` (none: counted in `total` only) and every bucket's criteria are
    tested on that one row with the same SQL as a search's. That equals counting `query` plus the bucket's criteria
    (each an EXISTS of its own) only when `param` has at most one value per resource: the caller's to ensure.
    """
    assert all(c.param == param and c.type == "date" for criteria in buckets.values() for c in criteria)
    candidates, rid = _candidates(query)
    matched = select(rid.label("rid")).distinct().where(*candidates).subquery("matched")
    value = sp_date.alias("bucket_value")
    of_match = and_(value.c.rid == matched.c.rid, value.c.res_type == query.resource_type, value.c.param == param)
    sums = [
        func.coalesce(func.sum(case((and_(*(_match(value, c) for c in criteria)), 1), else_=0)), 0).label(name)
        for name, criteria in buckets.items()
    ]
    return select(func.count().label("total"), *sums).select_from(matched.outerjoin(value, of_match))


def _candidates(query: SearchQuery) -> tuple[list[Cond], KeyedColumnElement[Any]]:
    """The conditions of a match and the rid column they select.

    Index rows exist only for the current version of live resources (store/schema.py), so when a criterion
    requires index rows, its index table is the driving table and `resource` is read only for the final page.
    """
    # The likely fewest rows drive: a reference (one patient's, one owner's), then a single token, then the rest.
    driving = min((c for c in query.criteria if _requires_rows(c)), key=_breadth, default=None)
    if driving is None or any(c.param in RESOURCE_COLUMN_PARAMS for c in query.criteria):
        rid = resource.c.rid
        base: list[Cond] = [resource.c.res_type == query.resource_type, resource.c.deleted == false()]
        return base + [_criterion(query.resource_type, c, rid) for c in query.criteria], rid
    table = _TABLES[driving.type].alias("drive")
    conds = [table.c.res_type == query.resource_type, table.c.param == driving.param, _match(table, driving)]
    others = [_criterion(query.resource_type, c, table.c.rid) for c in query.criteria if c is not driving]
    return conds + others, table.c.rid


def _breadth(c: Criterion) -> int:
    if c.type == "reference":
        return 0
    return 1 if c.type != "date" and len(c.values) == 1 else 2


def _requires_rows(c: Criterion) -> bool:
    """True when a match needs at least one index row of the criterion's parameter."""
    if c.param in RESOURCE_COLUMN_PARAMS or c.modifier == "not":
        return False
    return not (c.modifier == "missing" and isinstance(c.values[0], MissingValue) and c.values[0].missing)


# --- criteria ----------------------------------------------------------------------------------------------------
def _criterion(res_type: str, c: Criterion, rid: KeyedColumnElement[Any]) -> Cond:
    if c.param == "_id":
        return _on_id(c)
    if c.param == "_lastUpdated":
        return _on_last_updated(c)
    table = _TABLES[c.type]
    if c.modifier == "missing":
        assert isinstance(c.values[0], MissingValue)
        present = _exists(table, res_type, c.param, rid)
        return not_(present) if c.values[0].missing else present
    found = _exists(table, res_type, c.param, rid, _match(table, c))
    return not_(found) if c.modifier == "not" else found


def _match(table: FromClause, c: Criterion) -> Cond:
    """Any of the criterion's values (OR) on one index row."""
    if c.modifier == "missing":
        return true()
    values = list(c.values)
    plain = [v.code for v in values if isinstance(v, TokenValue) and v.system is None and not v.no_system]
    if len(plain) > 1:  # `status=requested,ready` as one IN list, which the (res_type, param, code) index serves
        values = [v for v in values if not (isinstance(v, TokenValue) and v.code in plain and v.system is None)]
        return or_(table.c.code.in_(plain), *(_VALUE_SQL[c.type](table, v, c.modifier) for v in values))
    return or_(*(_VALUE_SQL[c.type](table, value, c.modifier) for value in values))


def _exists(table: FromClause, res_type: str, param: str, rid: KeyedColumnElement[Any], *conditions: Cond) -> Cond:
    # res_type is implied by the rid, but stating it lets the planner choose either index: probes per candidate
    # on (rid, res_type, param, ...) or, for many candidates, a hash join over (res_type, param, value, rid).
    of_param = table.c.rid == rid, table.c.res_type == res_type, table.c.param == param
    return select(1).select_from(table).where(*of_param, *conditions).exists()


def _on_id(c: Criterion) -> Cond:
    if c.modifier == "missing":
        assert isinstance(c.values[0], MissingValue)
        return false() if c.values[0].missing else true()
    ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code is not None]
    found = resource.c.res_id.in_(ids)
    return not_(found) if c.modifier == "not" else found


def _on_last_updated(c: Criterion) -> Cond:
    if c.modifier == "missing":
        assert isinstance(c.values[0], MissingValue)
        return false() if c.values[0].missing else true()
    t = resource.c.last_updated
    return or_(*(_POINT[v.prefix](t, v.low, v.high) for v in c.values if isinstance(v, DateValue)))


def _token(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, TokenValue)
    parts: list[Cond] = []
    if value.code is not None:
        parts.append(table.c.code == value.code)
    if value.no_system:
        parts.append(table.c.system.is_(None))
    elif value.system is not None:
        parts.append(table.c.system == value.system)
    return and_(*parts)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _string(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, StringValue)
    norm = normalise(value.text)
    if modifier == "exact":
        return and_(table.c.value == norm, table.c.exact == value.text)
    pattern = ("%" if modifier == "contains" else "") + _like_escape(norm) + "%"
    return table.c.value.like(pattern, escape="\\")


def _date(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, DateValue)
    return _RANGE[value.prefix](table.c.low, table.c.high, value.low, value.high)


def _reference(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, ReferenceValue)
    if value.url is not None:
        url = table.c.url == value.url
        return and_(url, table.c.version == value.version) if value.version else url
    by_id = table.c.target_id == value.target_id
    return and_(table.c.target_type == value.target_type, by_id) if value.target_type else by_id


def _quantity(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, QuantityValue)
    col, n = table.c.value, float(value.number)
    spread = abs(n) * 0.1  # `ap`: within 10% (the spec leaves the margin to the server)
    number = {
        "eq": and_(col >= value.low, col < value.high), "ne": or_(col < value.low, col >= value.high),
        "gt": col > n, "sa": col > n, "lt": col < n, "eb": col < n, "ge": col >= n, "le": col <= n,
        "ap": and_(col >= n - spread, col <= n + spread),
    }[value.prefix]  # fmt: skip
    parts = [number]
    if value.system is not None:
        parts.append(table.c.system == value.system)
    if value.code is not None:
        parts.append(table.c.code == value.code)
    return and_(*parts)


def _uri(table: FromClause, value: Value, modifier: str | None) -> Cond:
    assert isinstance(value, UriValue)
    if modifier == "below":
        return table.c.value.like(_like_escape(value.value) + "%", escape="\\")
    return table.c.value == value.value


_VALUE_SQL: dict[str, Callable[[FromClause, Value, str | None], Cond]] = {
    "token": _token, "string": _string, "date": _date, "reference": _reference, "quantity": _quantity, "uri": _uri,
}  # fmt: skip

# Resource range [rl, rh) against search range [sl, sh) (search spec 3.1.1.4.2, prefixes).
_RANGE: dict[str, Callable[[Any, Any, datetime, datetime], Cond]] = {
    "eq": lambda rl, rh, sl, sh: and_(rl >= sl, rh <= sh),
    "ne": lambda rl, rh, sl, sh: or_(rl < sl, rh > sh),
    "gt": lambda rl, rh, sl, sh: rh > sh,
    "lt": lambda rl, rh, sl, sh: rl < sl,
    "ge": lambda rl, rh, sl, sh: or_(rh > sh, and_(rl >= sl, rh <= sh)),
    "le": lambda rl, rh, sl, sh: or_(rl < sl, and_(rl >= sl, rh <= sh)),
    "sa": lambda rl, rh, sl, sh: rl >= sh,
    "eb": lambda rl, rh, sl, sh: rh <= sl,
    "ap": lambda rl, rh, sl, sh: and_(rl < sh, rh > sl),
}
# The same rules for an instant t (the range [t, t + 1 µs)), e.g. resource.last_updated.
_POINT: dict[str, Callable[[Any, datetime, datetime], Cond]] = {
    "eq": lambda t, sl, sh: and_(t >= sl, t < sh),
    "ap": lambda t, sl, sh: and_(t >= sl, t < sh),
    "ne": lambda t, sl, sh: or_(t < sl, t >= sh),
    "gt": lambda t, sl, sh: t >= sh,
    "sa": lambda t, sl, sh: t >= sh,
    "lt": lambda t, sl, sh: t < sl,
    "eb": lambda t, sl, sh: t < sl,
    "ge": lambda t, sl, sh: t >= sl,
    "le": lambda t, sl, sh: t < sh,
}


# --- sorting -----------------------------------------------------------------------------------------------------
_SORT_COLUMNS = {"date": ("low", "high"), "string": ("value", "value"), "token": ("code", "code"),
                 "uri": ("value", "value"), "quantity": ("value", "value")}  # fmt: skip


def _sort_key(res_type: str, sort: SortKey, rid: KeyedColumnElement[Any]) -> ColumnElement[Any]:
    if sort.param in ("_id", "_lastUpdated"):
        row = resource.alias("sort_row")
        col = row.c.res_id if sort.param == "_id" else row.c.last_updated
        return select(col).where(row.c.rid == rid).scalar_subquery()
    table = _TABLES[sort.type]
    low, high = _SORT_COLUMNS[sort.type]
    agg = func.max(table.c[high]) if sort.descending else func.min(table.c[low])
    of_param = table.c.rid == rid, table.c.res_type == res_type, table.c.param == sort.param
    return select(agg).where(*of_param).scalar_subquery()


def _directions(sorts: Sequence[SortKey], keys: Sequence[ColumnElement[Any]]) -> list[Any]:
    return [(k.desc() if s.descending else k.asc()).nulls_last() for s, k in zip(sorts, keys, strict=True)]


# --- a page in index order ---------------------------------------------------------------------------------------
# Sorted by one date parameter (the worklist's `_sort=due-date`), a page is read by walking that parameter's
# (res_type, param, low) or (res_type, param, high) index in order and keeping the rows whose resource matches:
# the first 50 of 60,000 open Tasks cost 50 index entries instead of a sort key for each of the 60,000.
# A resource with several values appears once per value; its first row in that order carries its sort key
# (min(low) ascending, max(high) descending), so de-duplicating the walked rows in order gives the same order as
# build_search. The walk reads a bounded prefix of the index (store/ordered.py): sparse matches (one owner's ready
# Tasks) are found faster by build_search, driven from their own criterion.


def index_ordered(query: SearchQuery) -> SortKey | None:
    """The sort key when a page can be read in index order (one date parameter, criteria on index rows only)."""
    if len(query.sort) != 1 or any(c.param in RESOURCE_COLUMN_PARAMS for c in query.criteria):
        return None
    sort = query.sort[0]
    return sort if sort.type == "date" and sort.param not in RESOURCE_COLUMN_PARAMS else None


def build_walk(query: SearchQuery, sort: SortKey, rows: int, within: int) -> Select[Any]:
    """(rid, key) of the first `rows` matching rows among the first `within` index rows of the sort parameter."""
    key = sp_date.c.high if sort.descending else sp_date.c.low
    prefix = (
        select(sp_date.c.rid, key.label("key"))
        .where(sp_date.c.res_type == query.resource_type, sp_date.c.param == sort.param)
        .order_by(key.desc() if sort.descending else key.asc(), sp_date.c.rid)
        .limit(within)
        .subquery("walk")
    )
    matches = [_criterion(query.resource_type, c, prefix.c.rid) for c in query.criteria]
    ordered = prefix.c.key.desc() if sort.descending else prefix.c.key.asc()
    return select(prefix.c.rid, prefix.c.key).where(*matches).order_by(ordered, prefix.c.rid).limit(rows)


def build_dates_between(res_type: str, param: str, start: datetime, end: datetime) -> Select[Any]:
    """One index row of `param` beginning or ending within [start, end] (two index ranges, either may answer)."""
    of_param = sp_date.c.res_type == res_type, sp_date.c.param == param
    begins, ends = sp_date.c.low.between(start, end), sp_date.c.high.between(start, end)
    return select(sp_date.c.rid).where(*of_param, or_(begins, ends)).limit(1)


def build_rows(rids: Sequence[int]) -> Select[Any]:
    return select(*RESULT_COLUMNS).where(resource.c.rid.in_(rids), resource.c.deleted == false())


# --- _include / _revinclude --------------------------------------------------------------------------------------
def build_include(spec: IncludeSpec, rids: Sequence[int]) -> Select[Any]:
    """The resources that `spec.param` of the matched rows (`rids`) points at: literal `Type/id` references and
    canonical `url[|version]` references (matched against the target's `url` and `version` parameters)."""
    ref = sp_reference.alias("ref")
    from_refs = ref.c.rid.in_(rids), ref.c.res_type == spec.source_type, ref.c.param == spec.param
    literal = select(ref.c.target_type, ref.c.target_id).where(*from_refs, ref.c.target_id.is_not(None))
    targets = (spec.target_type,) if spec.target_type else params_for(spec.source_type)[spec.param].target
    url = sp_uri.alias("url")
    canonical = (
        select(url.c.rid)
        .join(ref, ref.c.url == url.c.value)
        .where(*from_refs, url.c.param == "url", url.c.res_type.in_(targets), _version_matches(ref, url.c.rid))
    )
    # One IN over a UNION of the two rid sets: as an OR of the two, PostgreSQL can use neither index and scans
    # the whole resource table (60 ms on 100k Tasks for a worklist page's 50 rows).
    target = resource.alias("target")
    by_id = select(target.c.rid).where(tuple_(target.c.res_type, target.c.res_id).in_(literal))
    typed = [resource.c.res_type == spec.target_type] if spec.target_type else []
    return select(*RESULT_COLUMNS).where(resource.c.rid.in_(union(by_id, canonical)), resource.c.deleted == false(),
                                         *typed)  # fmt: skip


def build_revinclude(spec: IncludeSpec, rids: Sequence[int]) -> Select[Any]:
    """The `spec.source_type` resources whose `spec.param` points at the matched rows (`rids`)."""
    ref = sp_reference.alias("ref")
    matched = resource.alias("matched")
    of_source = ref.c.res_type == spec.source_type, ref.c.param == spec.param
    literal = (
        select(ref.c.rid)
        .join(matched, and_(ref.c.target_id == matched.c.res_id, ref.c.target_type == matched.c.res_type))
        .where(matched.c.rid.in_(rids), *of_source)
    )
    url = sp_uri.alias("url")
    canonical = (
        select(ref.c.rid)
        .join(url, ref.c.url == url.c.value)
        .where(url.c.rid.in_(rids), url.c.param == "url", *of_source, _version_matches(ref, url.c.rid))
    )
    found = or_(resource.c.rid.in_(literal), resource.c.rid.in_(canonical))
    return select(*RESULT_COLUMNS).where(resource.c.res_type == spec.source_type, resource.c.deleted == false(), found)


def _version_matches(ref: FromClause, target_rid: KeyedColumnElement[Any]) -> Cond:
    """A canonical `url|version` names one version (the target's `version` token); `url` alone any version."""
    version = sp_token.alias("version")
    same = (
        select(1)
        .where(version.c.rid == target_rid, version.c.param == "version", version.c.code == ref.c.version)
        .exists()
    )
    return or_(ref.c.version.is_(None), same)

"""Where a write spends its CPU and its round trips: the real app in-process on PostgreSQL, per component.

    python bench/profile_writes.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test \
        [--calls 200] [--apply-calls 100]

Builds the app as `carepath serve` does (auth off, events embedded: the outbox relay and the delivery duty run in
the same process, as they do in the HTTP benchmarks) in a fresh schema (dropped afterwards), stores the 10-action
pathway of `bench_apply_http.py`, then, through httpx's ASGI transport (no sockets):

1. counts the SQL statements of one Task create, one read and one persisted `$apply` (a SQLAlchemy
   `before_cursor_execute` listener on the app's engine, installed here only), each statement by kind and table;
2. profiles `--calls` Task creates and `--apply-calls` persisted applies under cProfile with `time.process_time`
   as the clock and charges the CPU to components by the function frames on the stack (the innermost match
   wins, see COMPONENTS): outbox, delivery feed, routing, workflow, trigger queue, index extraction, validation,
   the store's batched writes (resource + history + index rows), response building, FastAPI/Starlette/middleware,
   and the benchmark's own client (httpx over ASGI: not server cost).

Profiling inflates many small calls: read the shares and the statement counts, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from bench_apply_http import check_apply, store_content
from bench_fhir_server import fresh_schema
from fhir_load import HEADERS, expect, task_factory
from fhir_load import Workload as LoadWorkload
from sqlalchemy import event

from carepath.api.app import create_app
from carepath.settings import Settings

# (component, (file fragment, function name or "" for any)), innermost frame first; the first match on the way
# from a profiled function out to its callers gets its self time.
COMPONENTS: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    ("outbox", (("carepath/store/outbox.py", ""), ("carepath/service/apply_persist.py", "_queue_events"),
                ("carepath/service/task_events.py", "emit"))),
    ("delivery feed", (("carepath/store/changes.py", ""),)),
    ("trigger queue", (("carepath/service/trigger_queue.py", ""),)),
    ("stop rules", (("carepath/service/stop_rules.py", ""),)),
    ("routing", (("carepath/service/routing.py", ""), ("carepath/workflow/routing.py", ""))),
    ("workflow", (("carepath/service/task_workflow.py", ""), ("carepath/workflow/", ""),
                  ("carepath/service/careplan_rollup.py", ""))),
    ("index extraction", (("carepath/fhir/search/extract", ""), ("carepath/fhir/search/rows", ""))),
    ("validation", (("carepath/fhir/validation", ""), ("carepath/fhir/bindings", ""),
                    ("carepath/engine/invariants", ""), ("/fhir/resources/", ""), ("/fhir_core/", ""))),
    ("store: batched writes", (("carepath/store/pending.py", ""),)),
    ("store: reads and search", (("carepath/store/repository.py", ""), ("carepath/store/search_sql.py", ""))),
    ("engine", (("carepath/engine/", ""), ("/fhirpathpy/", ""), ("carepath/fhir/fhirpath", ""),
                ("carepath/fhir/compiled", ""))),
    ("apply service", (("carepath/service/apply", ""), ("carepath/service/bundles.py", ""))),
    ("response building", (("carepath/api/http.py", "render"), ("carepath/api/http.py", "json_response"),
                           ("carepath/jsonutil.py", "dumps"))),
    ("request parsing", (("carepath/api/http.py", ""), ("carepath/jsonutil.py", ""))),
    ("event duties (relay, delivery)", (("carepath/events/", ""), ("carepath/delivery/", ""),
                                        ("carepath/store/delivery.py", ""), ("/fakeredis/", ""))),
    ("database layer", (("/sqlalchemy/", ""), ("/asyncpg/", ""), ("greenlet", ""))),
    ("FastAPI/Starlette/middleware", (("/fastapi/", ""), ("/starlette/", ""), ("carepath/api/", ""))),
    ("bench client (httpx, in-process)", (("/httpx/", ""), ("/anyio/", ""), ("bench/", ""))),
    ("asyncio", (("/asyncio/", ""),)),
]  # fmt: skip
_WORDS = re.compile(r"^\s*(\w+)(?:.*?\b(?:INTO|FROM|UPDATE)\s+(\w+))?", re.S | re.I)


def _matches(filename: str, function: str) -> str | None:
    for name, rules in COMPONENTS:
        if any(part in filename and (not fn or fn == function) for part, fn in rules):
            return name
    return None


def components(stats: pstats.Stats) -> dict[str, float]:
    """Self time per component: a frame that matches none is charged through its callers (weighted by how much
    of its time each caller accounts for), up the stack, until one matches."""
    table: Any = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def shares(key: Any, depth: int = 0) -> dict[str, float]:
        if key in memo:
            return memo[key]
        filename, _, function = key
        own = _matches(filename, function) if filename != "~" else None
        if own is not None or depth > 40 or key not in table:
            memo[key] = {own or "other": 1.0}
            return memo[key]
        callers = table[key][4]
        total = sum(c[3] for c in callers.values()) or 1.0
        out: dict[str, float] = defaultdict(float)
        memo[key] = {"other": 1.0}  # recursion guard
        for caller, (_, _, _, cum) in callers.items():
            for name, part in shares(caller, depth + 1).items():
                out[name] += part * cum / total
        memo[key] = dict(out) or {"other": 1.0}
        return memo[key]

    result: dict[str, float] = defaultdict(float)
    for key, (_, _, self_time, _, _) in table.items():
        for name, part in shares(key).items():
            result[name] += self_time * part
    return result


@contextmanager
def counting(engine: Any, show: bool) -> Iterator[Counter[str]]:
    """Statements sent while the request runs in this task (the ASGI transport runs the app in the caller's
    task); the embedded duties' polls run in their own tasks and are not counted."""
    seen: Counter[str] = Counter()
    mine = asyncio.current_task()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if asyncio.current_task() is not mine:
            return
        match = _WORDS.match(statement)
        words = f"{match[1].upper()} {match[2] or ''}".strip() if match else statement[:30]
        seen[words + (" (executemany)" if executemany else "")] += 1
        if show:
            print("   ", " ".join(statement.split())[:160])

    def begin(conn: Any) -> None:
        if asyncio.current_task() is mine:
            seen["BEGIN"] += 1

    def commit(conn: Any) -> None:
        if asyncio.current_task() is mine:
            seen["COMMIT"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "begin", begin)
    event.listen(engine.sync_engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "begin", begin)
        event.remove(engine.sync_engine, "commit", commit)


def _apply_body(patient: int) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": f"Patient/bench-{patient % 50:04d}"},
        {"name": "persist", "valueBoolean": True}]}  # fmt: skip


async def _profile(label: str, calls: int, one: Callable[[int], Any], top: int) -> None:
    if calls <= 0:
        return
    for i in range(10):
        await one(i)
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    for i in range(calls):
        await one(i)
    profiler.disable()
    total = time.process_time() - started
    stats = pstats.Stats(profiler)
    shares = components(stats)
    profiled = sum(shares.values()) or 1.0
    print(f"\n{label}: {total * 1000 / calls:.2f} ms CPU per call under the profiler ({calls} calls, in-process)")
    for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<34}{100 * seconds / profiled:>6.1f} %  {seconds * 1000 / calls:>7.3f} ms")
    if top:
        stats.sort_stats("tottime").print_stats(top)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--calls", type=int, default=200, help="Task creates profiled")
    parser.add_argument("--apply-calls", type=int, default=100, help="persisted applies profiled")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most self time")
    parser.add_argument("--sql", action="store_true", help="print each counted statement's text")
    args = parser.parse_args(argv)
    async with fresh_schema(args.database_url) as (schema, _):
        settings = Settings(database_url=args.database_url, database_schema=schema, load_pathways_on_start=False,
                            log_level="WARNING")  # fmt: skip
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            engine = app.state.carepath.repository.engine
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
                await _run(client, engine, args, transport)
    return 0


async def _run(client: httpx.AsyncClient, engine: Any, args: argparse.Namespace, transport: Any) -> None:
    base = str(client.base_url)
    # store_content and check_apply open their own clients on a base URL: give them this app's transport
    original = httpx.AsyncClient.__init__

    def patched(self: httpx.AsyncClient, *a: Any, **kw: Any) -> None:
        original(self, *a, **{**kw, "transport": transport})

    httpx.AsyncClient.__init__ = patched  # type: ignore[method-assign]
    try:
        plan_id = await store_content(base, 50)
        await check_apply(base, plan_id, 50)
    finally:
        httpx.AsyncClient.__init__ = original  # type: ignore[method-assign]
    next_task = task_factory(LoadWorkload(owners=20, patients=50, seed=7))
    ids: list[str] = []

    async def create(_: int) -> None:
        response = await client.post("/fhir/Task", json=next_task(), headers=HEADERS)
        expect(response, 201)
        ids.append(response.json()["id"])

    async def read(i: int) -> None:
        expect(await client.get(f"/fhir/Task/{ids[i % len(ids)]}", headers=HEADERS), 200)

    async def apply(i: int) -> None:
        headers = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
        response = await client.post(f"/fhir/PlanDefinition/{plan_id}/$apply", json=_apply_body(i), headers=headers)
        expect(response, 200)

    for label, one in (("Task create", create), ("Task read", read), ("persisted $apply (10 actions)", apply)):
        await one(0)
        await asyncio.sleep(0.5)  # let the embedded relay drain, so its statements are not counted below
        with counting(engine, args.sql) as seen:
            await one(1)
        print(f"\n{label}: {sum(seen.values())} statements (BEGIN and COMMIT included)")
        for words, n in sorted(seen.items()):
            print(f"  {n:>3}  {words}")
    await _profile("Task create", args.calls, create, args.top)
    await _profile("Task read", args.calls, read, args.top)
    await _profile("persisted $apply (10 actions)", args.apply_calls, apply, args.top)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

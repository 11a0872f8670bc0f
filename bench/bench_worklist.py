"""Worklist benchmark (issue 14, "Performance"): the `/app` page on 100,000 Tasks, and live-update latency.

    python bench/bench_worklist.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test \
        [--redis-url redis://127.0.0.1:6379/0] [--tasks 100000] [--requests 200] [--changes 50]

In a fresh PostgreSQL schema (dropped afterwards), with fresh stream names on the given Redis (deleted afterwards):

1. `carepath serve` (CAREPATH_AUTH=off, the shipped pathways loaded, CAREPATH_REDIS_URL set, so the server only
   serves) and `carepath worker` (consumer, outbox relay, scheduler, delivery), as in production.
2. Practitioners and `--patients` Patients through the API; `--tasks` Tasks set-based in SQL (sql_seed.py) with
   owners (one in seven unassigned), the pathway's roles and codes, statuses, priorities and due dates from 30
   days ago to 90 days ahead. Every Task's index rows are then compared with the store's own extraction
   (`index_differences`): the run stops unless they are exactly what writes through the API would have stored.
   The overdue alerts of Tasks already late are recorded as raised (a worklist that has run for a while), so the
   scheduler's first scan does not escalate 15,000 Tasks in the middle of the measurement. VACUUM (ANALYZE).
3. Each filter's page is checked against the FHIR search it stands for (same Tasks in the same order, same
   total and window counts, through `/fhir/Task`), then requested `--requests` times one after another.
   Server time: the page's own `Server-Timing: app;dur=` (route entry to rendered body: queries and template);
   the wall time on loopback (request sent to last byte received, through every middleware) is given beside it.
4. Live: an open `/app/live` stream; `--changes` PUTs through the FHIR API, each moving a different in-progress
   Task to on-hold; latency = SSE frame naming that Task received, minus the PUT's response received (the change
   is committed before the response is sent).

Writes bench/out/<label>-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]
import httpx
import redis.asyncio as aioredis
from bench_fhir_server import (
    OUT_DIR,
    Server,
    _raw_dsn,
    add_server_arguments,
    carepath_process,
    fresh_schema,
    machine,
    running_server,
    server_env,
    settle,
    write_report,
)
from bench_growth import CpuMeter, sum_unit_ms
from fhir_load import HEADERS, STATUS_WEIGHTS, _percentile, expect
from sql_seed import index_differences, insert_generated

from carepath.content.loader import load_pathway_files
from carepath.web.views.worklist import WINDOWS, parse_filters, search_pairs

PATHWAYS = Path(__file__).resolve().parents[1] / "pathways"
TZ = ZoneInfo("Europe/Paris")
TARGET_PAGE_P95_MS, TARGET_LIVE_MS = 50.0, 1000.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, label="worklist")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--owners", type=int, default=40)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per filter")
    parser.add_argument("--changes", type=int, default=50, help="timed live updates")
    return parser.parse_args(argv)


def filters(args: argparse.Namespace, role: str) -> dict[str, dict[str, str]]:
    """The filters timed: what a coordinator clicks through in a day."""
    return {
        "default": {},
        "overdue": {"due": "overdue"},
        "ready+owner": {"status": "ready", "owner": "wl-owner-07"},
        "role": {"role": role},
        "patient": {"patient": "wl-patient-00042"},
        "page 5": {"page": "5"},
    }


# -- data ------------------------------------------------------------------------------------------------------
def task_kinds() -> list[dict[str, Any]]:
    """(title, code, role) of the shipped pathway's activities: the Tasks look like the ones $apply makes."""
    kinds = []
    for definition in load_pathway_files(PATHWAYS):
        roles = [p["role"] for p in definition.get("participant", []) if p.get("role")]
        if definition["resourceType"] == "ActivityDefinition" and roles and definition.get("code"):
            kinds.append({"title": definition["title"], "code": definition["code"], "role": roles[0]})
    return kinds


def task_generator(args: argparse.Namespace, anchor: datetime, kinds: list[dict[str, Any]]) -> str:
    """The SELECT making Task g (sql_seed.insert_generated): deterministic, each choice from its own hash of g."""
    statuses = [s for s, weight in STATUS_WEIGHTS.items() for _ in range(weight // 5)]  # 20 slots
    status_array = "ARRAY[" + ",".join(f"'{s}'" for s in statuses) + "]"
    minutes = 120 * 24 * 60  # due dates over 120 days, 30 of them past
    instant = 'to_char({}, \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
    return f"""
        SELECT 'Task' AS res_type, 'wl-task-' || g AS res_id,
               timestamp '{anchor:%Y-%m-%d %H:%M:%S}' - g * interval '1 second' AS last_updated,
               json_strip_nulls(json_build_object(
                 'resourceType', 'Task', 'id', 'wl-task-' || g,
                 'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-01-01T00:00:00Z'),
                 'status', ({status_array})[1 + h1 % {len(statuses)}], 'intent', 'order',
                 'priority', CASE WHEN h2 % 10 = 3 THEN 'urgent' WHEN h2 % 50 = 7 THEN 'asap' ELSE 'routine' END,
                 'code', kind -> 'code', 'description', kind ->> 'title',
                 'for', json_build_object('reference', 'Patient/wl-patient-' || lpad((h3 % {args.patients})::text, 5, '0')),
                 'owner', CASE WHEN h4 % 7 <> 0 THEN json_build_object(
                   'reference', 'Practitioner/wl-owner-' || lpad((h4 / 7 % {args.owners})::text, 2, '0')) END,
                 'performerType', json_build_array(kind -> 'role'),
                 'authoredOn', {instant.format("due - interval '21 days'")},
                 'restriction', json_build_object('period', json_build_object('end', {instant.format("due")}))
               ))::text AS content
        FROM (SELECT g, h1, h2, h3, h4, kinds -> (h5 % {len(kinds)})::int AS kind,
                     timestamp '{anchor:%Y-%m-%d %H:%M:00}' + (h6 % {minutes} - {minutes // 4}) * interval '1 minute' AS due
              FROM generate_series($1::bigint, $2::bigint - 1) g,
                   LATERAL (SELECT {", ".join(f"abs(hashint8(g * 8 + {i})) AS h{i}" for i in range(1, 7))}) h,
                   (SELECT $kinds${json.dumps(kinds)}$kinds$::json AS kinds) k) s"""  # noqa: E501


# The index rows of those Tasks, derived from the stored JSON the way extract_index reads it (checked after).
_TASK_JSON = "(SELECT rid, res_type, content::json AS j FROM {new}) r"
TASK_INDEX = [
    "INSERT INTO sp_token (rid, res_type, param, system, code) "
    f"SELECT rid, res_type, p, NULL, j ->> p FROM unnest(ARRAY['status', 'intent', 'priority']) p, {_TASK_JSON}",
    "INSERT INTO sp_token (rid, res_type, param, system, code) SELECT rid, res_type, p, c ->> 'system', c ->> 'code' "
    f"FROM {_TASK_JSON}, LATERAL (SELECT 'code' AS p, j -> 'code' AS concept UNION ALL "
    "SELECT 'performer', json_array_elements(j -> 'performerType')) concepts, "
    "json_array_elements(concept -> 'coding') c(c)",
    "INSERT INTO sp_date (rid, res_type, param, low, high) SELECT rid, res_type, p, v, v + interval '1 second' "
    f"FROM {_TASK_JSON}, LATERAL (SELECT 'authored-on' AS p, (j ->> 'authoredOn')::timestamptz AT TIME ZONE 'UTC' AS v "
    "UNION ALL SELECT 'due-date', (j -> 'restriction' -> 'period' ->> 'end')::timestamptz AT TIME ZONE 'UTC') dates",
    "INSERT INTO sp_reference (rid, res_type, param, target_type, target_id) "
    "SELECT rid, res_type, p, split_part(ref, '/', 1), split_part(ref, '/', 2) "
    f"FROM {_TASK_JSON}, LATERAL (SELECT 'owner' AS p, j -> 'owner' ->> 'reference' AS ref UNION ALL "
    "SELECT 'subject', j -> 'for' ->> 'reference' UNION ALL SELECT 'patient', j -> 'for' ->> 'reference') refs "
    "WHERE ref IS NOT NULL",
]  # fmt: skip


async def store_people(client: httpx.AsyncClient, args: argparse.Namespace) -> None:
    """Practitioners (the owners) and Patients through ordinary transaction Bundles (exact index rows)."""
    family = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"]
    given = ["Camille", "Louis", "Léa", "Jules", "Chloé", "Hugo", "Inès", "Lucas", "Manon", "Élise", "Noah"]
    people = [{"resourceType": "Practitioner", "id": f"wl-owner-{i:02d}",
               "name": [{"family": family[i % 10], "given": [given[i % 11]], "prefix": ["Dr"]}]}
              for i in range(args.owners)]  # fmt: skip
    people += [{"resourceType": "Patient", "id": f"wl-patient-{i:05d}", "gender": ("female", "male")[i % 2],
                "birthDate": f"{1940 + i % 50}-0{1 + i % 9}-1{i % 10}",
                "name": [{"family": f"{family[i % 10]}-{i}", "given": [given[(i * 3) % 11]]}]}
               for i in range(args.patients)]  # fmt: skip
    for start in range(0, len(people), 500):
        entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                   for r in people[start : start + 500]]  # fmt: skip
        response = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                     headers=HEADERS)  # fmt: skip
        expect(response, 200)


async def store_tasks(conn: asyncpg.Connection, args: argparse.Namespace, anchor: datetime) -> float:
    started = time.perf_counter()
    kinds = task_kinds()
    added = await insert_generated(conn, task_generator(args, anchor, kinds), 0, args.tasks, TASK_INDEX)
    if added != args.tasks:
        raise RuntimeError(f"{added} Tasks stored, not {args.tasks}")
    differences = await index_differences(conn, "Task")
    if differences:
        raise RuntimeError("seeded index rows differ from the store's extraction: " + "; ".join(differences))
    # Alerts of Tasks late already were raised long ago (the key the scheduler claims: Task id, due as written).
    await conn.execute(
        "INSERT INTO overdue_alert (task_id, due, alerted) SELECT res_id, content::json -> 'restriction' -> "
        "'period' ->> 'end', now() AT TIME ZONE 'utc' FROM resource WHERE res_type = 'Task' AND "
        "(content::json -> 'restriction' -> 'period' ->> 'end')::timestamptz < now() + interval '10 minutes'"
    )
    return time.perf_counter() - started


# -- the page --------------------------------------------------------------------------------------------------
_ROW = re.compile(r'data-task="([^"]+)"')
_COUNT = re.compile(r'<span class="count">\((\d+)\)</span>')
_TOTAL = re.compile(r'<p class="total" id="total">(\d+)')


async def check_page(client: httpx.AsyncClient, params: dict[str, str]) -> dict[str, int]:
    """The page shows what the FHIR search of its filters answers: Tasks and order, total, window counts."""
    for attempt in range(2):  # a due date passing `now` between the two requests changes the answer: once more
        now = datetime.now(UTC)
        page = await client.get("/app", params=params)
        expect(page, 200)
        chosen = parse_filters(params)
        pairs = search_pairs(chosen, now, TZ)
        paging = [("_sort", "due-date"), ("_count", "50"), ("_offset", str((chosen.page - 1) * 50))]
        api = await client.get("/fhir/Task", params=[*pairs, *paging], headers=HEADERS)
        expect(api, 200)
        expected_ids = [e["resource"]["id"] for e in api.json().get("entry", []) if e["search"]["mode"] == "match"]
        counts = {"total": await _count(client, pairs)}
        for window in WINDOWS:
            counts[window] = await _count(client, search_pairs(chosen, now, TZ, window=window))
        shown = {"total": int(_TOTAL.search(page.text)[1]),  # type: ignore[index]
                 **dict(zip(WINDOWS, map(int, _COUNT.findall(page.text)), strict=True))}  # fmt: skip
        if _ROW.findall(page.text) == expected_ids and shown == counts and expected_ids:
            return counts
        if attempt:
            raise RuntimeError(f"/app?{params}: the page differs from the FHIR search ({shown} vs {counts})")
    raise AssertionError("unreachable")


async def _count(client: httpx.AsyncClient, pairs: list[tuple[str, str]]) -> int:
    response = await client.get("/fhir/Task", params=[*pairs, ("_summary", "count")], headers=HEADERS)
    expect(response, 200)
    return int(response.json()["total"])


async def time_page(client: httpx.AsyncClient, meter: CpuMeter, params: dict[str, str], n: int) -> dict[str, float]:
    """`n` requests one after another: server time, wall time, and CPU per request (server + its PostgreSQL
    backends, from /proc: what the load of other processes on the machine barely moves)."""
    for _ in range(10):  # warm-up
        expect(await client.get("/app", params=params), 200)
    app: list[float] = []

    async def run() -> list[float]:
        wall = []
        for _ in range(n):
            started = time.perf_counter()
            response = await client.get("/app", params=params)
            wall.append((time.perf_counter() - started) * 1000)
            expect(response, 200)
            app.append(_server_ms(response, wall[-1]))
        return wall

    measured = await meter.measure(run)
    cpu_ms = (measured["server_s"] + measured["db_s"]) * 1000 / n
    return {"n": n, **_stats("server", app), **_stats("wall", measured["latencies"]), "cpu_ms": round(cpu_ms, 2),
            "cpu_units": round(cpu_ms / measured["unit_ms"], 3)}  # fmt: skip


async def time_after_change(client: httpx.AsyncClient, n: int) -> dict[str, float]:
    """The default page right after a Task change (its priority, through the FHIR API): the counts are read again."""
    found = await client.get("/fhir/Task", params={"status": "ready", "_count": "1"}, headers=HEADERS)
    expect(found, 200)
    task = found.json()["entry"][0]["resource"]
    app = []
    for i in range(n):
        body = {**{k: v for k, v in task.items() if k != "meta"}, "priority": ("urgent", "routine")[i % 2]}
        expect(await client.put(f"/fhir/Task/{task['id']}", json=body, headers=HEADERS), 200)
        response = await client.get("/app")
        expect(response, 200)
        app.append(_server_ms(response, math.nan))
    return {"n": n, **_stats("server", app)}


def _server_ms(response: httpx.Response, wall_ms: float) -> float:
    """The page's `Server-Timing: app;dur=`; a server without the header (`--server-src` of an older revision)
    counts its wall time on loopback instead."""
    found = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    return float(found[1]) if found else wall_ms


def _stats(name: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    figures = {"p50": statistics.median(ordered), "p95": _percentile(ordered, 0.95), "max": ordered[-1]}
    return {f"{name}_{k}_ms": round(v, 2) for k, v in figures.items()}


# -- live ------------------------------------------------------------------------------------------------------
async def time_live(server: Server, n: int) -> dict[str, float]:
    """`n` Task changes through the FHIR API, each timed from its response to the SSE frame naming it."""
    arrived: dict[str, float] = {}
    ready, seen = asyncio.Event(), asyncio.Condition()

    async def listen() -> None:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=None) as sse,
            sse.stream("GET", "/app/live") as stream,
        ):
            async for line in stream.aiter_lines():
                if line.startswith("retry:"):
                    ready.set()
                elif line.startswith("data:"):
                    task_id = json.loads(line[5:]).get("id", "")
                    async with seen:
                        arrived.setdefault(task_id, time.perf_counter())
                        seen.notify_all()

    latencies = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        found = await client.get("/fhir/Task", params={"status": "in-progress", "_count": str(n)}, headers=HEADERS)
        expect(found, 200)
        tasks = [e["resource"] for e in found.json()["entry"]]
        listener = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 30)
        rng = random.Random(14)
        try:
            for task in tasks:
                await asyncio.sleep(rng.uniform(0.05, 0.4))  # not in step with the relay's poll
                body = {**{k: v for k, v in task.items() if k != "meta"}, "status": "on-hold"}
                version = {"If-Match": f'W/"{task["meta"]["versionId"]}"'}
                response = await client.put(f"/fhir/Task/{task['id']}", json=body, headers={**HEADERS, **version})
                committed = time.perf_counter()
                expect(response, 200)
                async with seen:
                    await asyncio.wait_for(seen.wait_for(lambda t=task["id"]: t in arrived), 10)
                latencies.append((arrived[task["id"]] - committed) * 1000)
        finally:
            listener.cancel()
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(_percentile(ordered, 0.95), 1), "max_ms": round(ordered[-1], 1)}  # fmt: skip


# -- run -------------------------------------------------------------------------------------------------------
@asynccontextmanager
async def fresh_streams(redis_url: str) -> AsyncIterator[dict[str, str]]:
    """Stream names of this run only (the Redis is shared), deleted afterwards."""
    prefix = f"wlbench-{uuid.uuid4().hex[:8]}"
    names = {"CAREPATH_EVENTS_INBOUND_STREAM": f"{prefix}:inbound", "CAREPATH_EVENTS_DEAD_STREAM": f"{prefix}:dead",
             "CAREPATH_EVENTS_OUTBOUND_STREAM": f"{prefix}:events", "CAREPATH_EVENTS_GROUP": prefix}  # fmt: skip
    try:
        yield {"CAREPATH_REDIS_URL": redis_url, **names}
    finally:
        client = aioredis.from_url(redis_url)
        await client.delete(*(v for k, v in names.items() if k.endswith("_STREAM")))
        await client.aclose()


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    anchor = datetime.now(UTC).replace(tzinfo=None)
    report: dict[str, Any] = {"label": args.label, "started": stamp, "pages": {}}
    unit_start = sum_unit_ms()
    async with fresh_streams(args.redis_url) as streams, fresh_schema(args.database_url) as (schema, pg_version):
        env = {**streams, "CAREPATH_AUTH": "off", "CAREPATH_LOAD_PATHWAYS_ON_START": "true",
               "CAREPATH_TIMEZONE": str(TZ)}  # fmt: skip
        log_path = OUT_DIR / f"{args.label}-{stamp}-server.log"
        async with running_server(args, schema, log_path, env) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                await store_people(client, args)
            conn = await asyncpg.connect(_raw_dsn(args.database_url), server_settings={"search_path": schema})
            try:
                seconds = await store_tasks(conn, args, anchor)
            finally:
                await conn.close()
            print(f"{args.tasks:,} Tasks stored and checked in {seconds:.1f} s; VACUUM (ANALYZE)", flush=True)
            report["seed"] = {"tasks": args.tasks, "seconds": round(seconds, 1),
                              "vacuum_s": round(await settle(args.database_url, schema), 1)}  # fmt: skip
            worker = [sys.executable, "-m", "carepath.cli", "worker"]
            worker_log = OUT_DIR / f"{args.label}-{stamp}-worker.log"
            with carepath_process(worker, server_env(args, schema, env), worker_log):
                role = "|".join(task_kinds()[0]["role"]["coding"][0][k] for k in ("system", "code"))
                conn = await asyncpg.connect(_raw_dsn(args.database_url))
                meter = CpuMeter(server, conn)
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    for name, params in filters(args, role).items():
                        counts = await check_page(client, params)
                        load = os.getloadavg()[0]
                        figures = await time_page(client, meter, params, args.requests)
                        report["pages"][name] = {**figures, "matches": counts["total"], "load_1min": load}
                        print(f"{name:<12} {counts['total']:>6} matches  {figures}  (load {load:.1f})", flush=True)
                    report["after_change"] = await time_after_change(client, 20)
                    print(f"default page after a Task change: {report['after_change']}", flush=True)
                await conn.close()
                report["live"] = await time_live(server, args.changes)
                print(f"live: {report['live']}", flush=True)
    report["machine"] = {**machine(pg_version), "sum_range_1e6_ms": [round(unit_start, 1), round(sum_unit_ms(), 1)]}
    report["config"] = {k: str(v) for k, v in vars(args).items() if k != "database_url"}
    worst = max(p["server_p95_ms"] for p in report["pages"].values())
    report["targets"] = {"page_server_p95_ms": {"value": worst, "target": TARGET_PAGE_P95_MS,
                                                "met": worst <= TARGET_PAGE_P95_MS},
                         "live_p95_ms": {"value": report["live"]["p95_ms"], "target": TARGET_LIVE_MS,
                                         "met": report["live"]["max_ms"] <= TARGET_LIVE_MS}}  # fmt: skip
    print(json.dumps(report["targets"]))
    write_report(report, f"{args.label}-{stamp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

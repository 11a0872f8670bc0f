"""Growth benchmark (issue 12): does a persisted `$apply` cost the same as the database and the patient grow?

    python bench/bench_growth.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test \
        [--sizes 10000,60000,1000000] [--calls 60] [--one-patient 100]

Starts `carepath serve` in a fresh PostgreSQL schema (dropped afterwards) with the 10-action pathway of
`bench_apply_http.py` and `--patients` patients, then:

1. **Database growth.** For each size of `--sizes` (cumulative), adds resources of *other* patients directly in
   SQL — set-based `INSERT ... SELECT generate_series`, 100,000 rows a statement, with their history and
   search-index rows (2 references, 2 tokens, 1 date each, as a write through the API would give them) —
   VACUUM ANALYZEs (what autovacuum does within minutes), then times `--calls` persisted and transient
   `$apply`s, round-robin over the bench patients.
2. **One patient's growth.** `--one-patient` persisted applies, one after another, to one new patient: the
   median latency and the CPU per call of the last ten against the first ten.

CPU per call is measured, not inferred from wall time: the server processes' user+system time and that of the
PostgreSQL backends serving the server's connections (found through the server's sockets and
`pg_stat_activity.client_port`), both from /proc. It is also given in units of one `sum(range(10**6))` (best of
7) measured right before and after each timed run, so that runs on machines of different speed — or on this
shared machine at different moments — compare; ratios between sizes are ratios of those units.
Writes bench/out/<label>-<time>.json; `--server-src` runs an older revision.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from bench_apply_http import check_apply, store_content
from bench_fhir_server import (
    OUT_DIR,
    Server,
    _children,
    _proc_stat,
    _raw_dsn,
    add_server_arguments,
    fresh_schema,
    machine,
    running_server,
    settle,
    write_report,
)
from fhir_load import HEADERS, expect
from sql_seed import CHUNK, insert_generated

from carepath import jsonutil
from carepath.content import codes
from carepath.content.loader import load_pathway_files
from carepath.content.samples import SCENARIOS

PATHWAYS = Path(__file__).resolve().parents[1] / "pathways"
SHIPPED_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"

# Other patients' records: (type, share of 20, has a subject/patient reference).
MIX = [("Observation", 12, True), ("Condition", 2, True), ("Task", 4, True), ("CarePlan", 1, True),
       ("Provenance", 1, False)]  # fmt: skip
RESOURCES_PER_PATIENT = 40  # 2 million resources a year over 50,000 patients


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, label="growth")
    parser.add_argument("--sizes", default="10000,60000", help="resources of other patients, cumulative")
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=60, help="persisted and transient calls timed per size")
    parser.add_argument("--one-patient", type=int, default=100, help="persisted applies to one patient")
    parser.add_argument("--pathway", choices=("bench", "shipped"), default="bench",
                        help="bench: the 10-action plan of bench_apply_http.py; shipped: pathways/ on the 10 sample "
                             "patients of the clinical specification")  # fmt: skip
    return parser.parse_args(argv)


def sum_unit_ms() -> float:
    """One `sum(range(10**6))` in ms (best of 7): the machine's single-thread speed."""
    return min(timeit.repeat("sum(range(10**6))", number=1, repeat=7)) * 1000


def _cpu(pid: int) -> float:
    stat = _proc_stat(pid)
    return 0.0 if stat is None else (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets the processes hold (the client side of their database connections)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class CpuMeter:
    """CPU seconds of the server processes and of the PostgreSQL backends serving them."""

    server: Server
    conn: asyncpg.Connection

    async def sample(self) -> dict[int, float]:
        pids = [self.server.pid, *_children(self.server.pid)]
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", sorted(_socket_ports(pids))
        )
        return {**{pid: _cpu(pid) for pid in pids}, **{-r["pid"]: _cpu(r["pid"]) for r in rows}}  # backends < 0

    async def measure(self, run: Callable[[], Awaitable[list[float]]]) -> dict[str, Any]:
        """Latencies, server and database CPU seconds of a run, and the single-thread unit around it.

        The unit is measured right before and after the run: on a shared machine one `sum(range(10**6))` took
        anything from 9 to 35 ms within minutes, and CPU time per call moves with it."""
        unit_before = sum_unit_ms()
        before = await self.sample()
        latencies = await run()
        after = await self.sample()
        unit = (unit_before + sum_unit_ms()) / 2
        delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
        server_s, db_s = sum(v for k, v in delta.items() if k > 0), sum(v for k, v in delta.items() if k < 0)
        return {"latencies": latencies, "server_s": server_s, "db_s": db_s, "unit_ms": unit}


async def grow(conn: asyncpg.Connection, schema: str, start: int, stop: int) -> float:
    """Add resources start..stop-1 of other patients (rows, history, index rows); seconds taken."""
    started = time.perf_counter()
    types = "ARRAY[" + ",".join(f"'{t}'" for t, share, _ in MIX for _ in range(share)) + "]"
    referencing = "(" + ",".join(f"'{t}'" for t, _, has in MIX if has) + ")"
    await conn.execute(f'SET search_path TO "{schema}"')
    generator = f"""SELECT t AS res_type, 'other-' || g AS res_id,
          now() AT TIME ZONE 'utc' - g * interval '1 second' AS last_updated,
          json_build_object('resourceType', t, 'id', 'other-' || g,
            'meta', json_build_object('versionId', '1', 'lastUpdated', '2026-01-01T00:00:00Z'),
            'status', 'final', 'intent', 'order',
            'code', json_build_object('coding', json_build_array(
                json_build_object('system', '{codes.LOINC}', 'code', '{codes.ECOG}'))),
            'subject', json_build_object('reference', 'Patient/other-' || g / {RESOURCES_PER_PATIENT}),
            'effectiveDateTime', '2026-01-01T00:00:00Z', 'valueInteger', g % 5)::text AS content
        FROM (SELECT g, ({types})[1 + g % 20] AS t FROM generate_series($1::bigint, $2::bigint - 1) g) s"""
    index = [
        "INSERT INTO sp_reference (rid, res_type, param, target_type, target_id) SELECT rid, res_type, p, "
        f"'Patient', 'other-' || substr(res_id, 7)::bigint / {RESOURCES_PER_PATIENT} "
        f"FROM unnest(ARRAY['subject', 'patient']) p, {{new}} AND res_type IN {referencing}",
        "INSERT INTO sp_token (rid, res_type, param, system, code) SELECT rid, res_type, p, "
        f"CASE WHEN p = 'code' THEN '{codes.LOINC}' END, CASE WHEN p = 'code' THEN '{codes.ECOG}' "
        "ELSE 'final' END FROM unnest(ARRAY['code', 'status']) p, {new}",
        "INSERT INTO sp_date (rid, res_type, param, low, high) "
        "SELECT rid, res_type, 'date', last_updated, last_updated FROM {new}",
    ]
    for low in range(start, stop, CHUNK):
        high = min(stop, low + CHUNK)
        await insert_generated(conn, generator, low, high, index)
        print(f"  {high:,} other resources", flush=True)
    return time.perf_counter() - started


async def storage_mb(conn: asyncpg.Connection, schema: str) -> dict[str, float]:
    """Each table's size with its indexes and TOAST (MB): what the capacity plan's bytes per resource come from."""
    rows = await conn.fetch(
        "SELECT tablename, pg_total_relation_size(format('%I.%I', schemaname, tablename)) AS bytes "
        "FROM pg_tables WHERE schemaname = $1",
        schema,
    )
    return {r["tablename"]: round(r["bytes"] / 2**20, 1) for r in rows if r["bytes"] > 2**20}


def _figures(run: dict[str, Any]) -> dict[str, float]:
    calls, unit = len(run["latencies"]), run["unit_ms"]
    server_ms, db_ms = run["server_s"] * 1000 / calls, run["db_s"] * 1000 / calls
    return {"n": calls, "p50_ms": round(statistics.median(run["latencies"]), 2),
            "server_cpu_ms": round(server_ms, 2), "db_cpu_ms": round(db_ms, 2), "cpu_ms": round(server_ms + db_ms, 2),
            "unit_ms": round(unit, 1), "cpu_units": round((server_ms + db_ms) / unit, 3)}  # fmt: skip


async def _calls(client: httpx.AsyncClient, path: str, body: Callable[[], dict[str, Any]], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.post(path, json=body(), headers={**HEADERS, "Idempotency-Key": str(uuid.uuid4())})
        latencies.append((time.perf_counter() - started) * 1000)
        expect(response, 200)
    return latencies


async def at_size(
    meter: CpuMeter, client: httpx.AsyncClient, path: str, args: argparse.Namespace, subjects: list[str]
) -> dict[str, dict[str, float]]:
    out = {}
    for persist in (True, False):
        body = _round_robin(subjects, persist)
        await _calls(client, path, body, 10)  # warm-up
        run = functools.partial(_calls, client, path, body, args.calls)
        out["persisted" if persist else "transient"] = _figures(await meter.measure(run))
    return out


def _round_robin(subjects: list[str], persist: bool) -> Callable[[], dict[str, Any]]:
    counter = iter(range(10**9))
    return lambda: _apply_parameters(subjects[next(counter) % len(subjects)], persist)


def _apply_parameters(subject: str, persist: bool) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": subject}, {"name": "persist", "valueBoolean": persist}]}  # fmt: skip


async def _transaction(client: httpx.AsyncClient, entries: list[dict[str, Any]]) -> dict[str, Any]:
    body = jsonutil.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})  # decimals as written
    response = await client.post("/fhir", content=body, headers=HEADERS)
    expect(response, 200)
    return response.json()  # type: ignore[no-any-return]


async def store_shipped(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    """The shipped pathway and the specification's ten sample patients; (PlanDefinition id, subjects)."""
    definitions = load_pathway_files(PATHWAYS)
    answer = await _transaction(client, [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
                                         for r in definitions])  # fmt: skip
    plan_index = next(i for i, r in enumerate(definitions) if r.get("url") == SHIPPED_URL)
    plan_id = answer["entry"][plan_index]["response"]["location"].split("/")[1]
    now = datetime.now(UTC)
    for case in SCENARIOS:
        await _transaction(client, case.upsert(now)["entry"])
    subjects = [f"Patient/{case.key}" for case in SCENARIOS]
    response = await client.post(f"/fhir/PlanDefinition/{plan_id}/$apply", json=_apply_parameters(subjects[0], True),
                                 headers=HEADERS)  # fmt: skip
    expect(response, 200)
    if len(response.json().get("activity", [])) == 0:
        raise RuntimeError("the shipped pathway produced no activity for the first sample patient")
    return plan_id, subjects


async def store_solo(client: httpx.AsyncClient) -> str:
    """A new patient with one ECOG, for the bench pathway's one-patient run."""
    patient = {"resourceType": "Patient", "id": "bench-solo", "name": [{"text": "One patient, many applies"}]}
    observation = {"resourceType": "Observation", "id": "bench-solo-ecog", "status": "final",
                   "code": {"coding": [{"system": codes.LOINC, "code": codes.ECOG}]},
                   "subject": {"reference": "Patient/bench-solo"}, "effectiveDateTime": "2026-01-15T10:00:00Z",
                   "valueInteger": 3}  # fmt: skip
    await _transaction(client, [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                                for r in (patient, observation)])  # fmt: skip
    return "Patient/bench-solo"


async def one_patient(meter: CpuMeter, client: httpx.AsyncClient, path: str, n: int, subject: str) -> dict[str, Any]:
    """`n` persisted applies to one patient, one after another: first ten against last ten."""
    body = _apply_parameters(subject, True)
    first = await meter.measure(lambda: _calls(client, path, lambda: body, 10))
    await _calls(client, path, lambda: body, n - 20)
    last = await meter.measure(lambda: _calls(client, path, lambda: body, 10))
    provenance = await client.get("/fhir/Provenance", params={"_sort": "-_lastUpdated", "_count": "1"},
                                  headers=HEADERS)  # fmt: skip
    expect(provenance, 200)
    entities = len(provenance.json()["entry"][0]["resource"].get("entity", []))
    head, tail = _figures(first), _figures(last)
    return {"subject": subject, "applies": n, "first_ten": head, "last_ten": tail,
            "median_ratio": round(tail["p50_ms"] / head["p50_ms"], 2),
            "cpu_units_ratio": round(tail["cpu_units"] / head["cpu_units"], 2),
            "last_provenance_entities": entities}  # fmt: skip


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    unit_start = sum_unit_ms()
    print(f"sum(range(10**6)): {unit_start:.1f} ms", flush=True)
    report: dict[str, Any] = {"label": args.label, "started": stamp, "sizes": {}}
    async with fresh_schema(args.database_url) as (schema, pg_version):
        log_path = OUT_DIR / f"{args.label}-{stamp}-server.log"
        async with running_server(args, schema, log_path) as server:
            if args.pathway == "shipped":
                async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                    plan_id, subjects = await store_shipped(client)
            else:
                plan_id = await store_content(server.url, args.patients)
                await check_apply(server.url, plan_id, args.patients)
                subjects = [f"Patient/bench-{i:04d}" for i in range(args.patients)]
            path = f"/fhir/PlanDefinition/{plan_id}/$apply"
            conn = await asyncpg.connect(_raw_dsn(args.database_url))
            try:
                meter = CpuMeter(server, conn)
                async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                    stored = 0
                    for size in [0, *sizes]:
                        seconds = await grow(conn, schema, stored, size) if size > stored else 0.0
                        stored = max(stored, size)
                        settle_s = await settle(args.database_url, schema)
                        load = os.getloadavg()[0]
                        figures = await at_size(meter, client, path, args, subjects)
                        timing = {"grow_s": round(seconds, 1), "vacuum_analyze_s": round(settle_s, 1)}
                        storage = await storage_mb(conn, schema)
                        report["sizes"][str(size)] = {**figures, **timing, "load_1min": load, "storage_mb": storage}
                        print(f"{size:>9,} other resources: {figures} (load {load:.1f})", flush=True)
                    if args.one_patient:
                        report["one_patient"] = await one_patient(
                            meter, client, path, args.one_patient,
                            subjects[1] if args.pathway == "shipped" else await store_solo(client))  # fmt: skip
                        print(f"one patient: {report['one_patient']}", flush=True)
            finally:
                await conn.close()
    unit_end = sum_unit_ms()
    report["machine"] = {**machine(pg_version), "sum_range_1e6_ms": [round(unit_start, 1), round(unit_end, 1)]}
    report["config"] = {k: str(v) for k, v in vars(args).items() if k != "database_url"}
    base = report["sizes"]["0"]["persisted"]["cpu_units"]
    report["persisted_cpu_units_ratio_to_fresh"] = {
        size: round(s["persisted"]["cpu_units"] / base, 2) for size, s in report["sizes"].items()
    }
    print(f"persisted CPU units per call, relative to fresh: {report['persisted_cpu_units_ratio_to_fresh']}")
    write_report(report, f"{args.label}-{stamp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

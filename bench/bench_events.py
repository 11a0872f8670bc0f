"""Event benchmark (issue 9): real Redis + PostgreSQL, `--workers` `carepath worker` processes.

    python bench/bench_events.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        --redis-url redis://127.0.0.1:6379/15

In a fresh PostgreSQL schema (dropped afterwards) and under stream names of its own (deleted afterwards):
1. data events that trigger nothing (heart-rate Observations of enrolled-nowhere patients), all XADDed first,
   timed from the first XADD until every entry is acknowledged: entry -> stored -> triggers evaluated -> ack;
2. enrolment events (a "disease worsened" status, one new patient each: a full shipped-pathway CarePlan with
   its Tasks), timed until every entry is acknowledged and every outbound event relayed;
3. latency at a paced 20 enrolments/s: event XADD -> CarePlan committed (its meta.lastUpdated, matched through
   the Provenance naming the event), p50/p99.
Also the workers' peak RSS and the outbox's peak length. Prints JSON; --write appends to bench/RESULTS.md.

Scale-out (issue 12): `--shards N` runs the workers on N inbound shards (CAREPATH_EVENTS_INBOUND_SHARDS; the
events go on shard crc32(patient) mod N as every producer does), `--phases enrolments` runs only phase 2, and each
phase reports the CPU seconds of every worker process and of the PostgreSQL backends serving them (found through
the workers' sockets), the single-thread unit (`sum(range(10**6))`, ms) around it and the load average:

    python bench/bench_events.py --workers 1 --shards 2 --phases enrolments --enrolments 150 --jsonl out.jsonl
    python bench/bench_events.py --workers 2 --shards 2 --phases enrolments --enrolments 150 --jsonl out.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from bench_fhir_server import _raw_dsn, fresh_schema, machine
from bench_growth import _cpu, _socket_ports, sum_unit_ms
from redis.asyncio import Redis

from carepath import jsonutil
from carepath.events.shards import shard_for, shards, workers_key
from carepath.fhir.search.query import parse_search
from carepath.service.pathways import load_pathways
from carepath.settings import Settings
from carepath.store import outbox
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

ROOT = Path(__file__).resolve().parents[1]
LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-events", type=int, default=3000)
    parser.add_argument("--enrolments", type=int, default=300)
    parser.add_argument("--paced-seconds", type=int, default=15)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--shards", type=int, default=1, help="inbound shards (CAREPATH_EVENTS_INBOUND_SHARDS)")
    parser.add_argument("--phases", default="data,enrolments,paced", help="comma-separated: data,enrolments,paced")
    parser.add_argument("--jsonl", type=Path, help="append the figures as one JSON line to this file")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    return parser.parse_args(argv)


def event(data: dict[str, Any], subject: str) -> bytes:
    return jsonutil.dumps({"specversion": "1.0", "id": uuid.uuid4().hex, "source": "urn:bench", "subject": subject,
                           "type": "dev.carepath.fhir.resource", "data": data})  # fmt: skip


def heart_rate(subject: str, n: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": subject},
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "valueInteger": 60 + n % 40}  # fmt: skip


def worsened(subject: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": {"reference": subject},
            "code": {"coding": [{"system": LOINC, "code": "97509-4"}]},
            "effectiveDateTime": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "271299001"}]}}  # fmt: skip


class Run:
    def __init__(self, settings: Settings, repository: Repository, redis: Redis) -> None:
        self.settings, self.repository, self.redis = settings, repository, redis
        self.workers: list[subprocess.Popen[bytes]] = []
        self.peak_rss_mb = 0.0
        self.peak_outbox = 0

    def start_workers(self, count: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
        for name, value in self.settings.model_dump().items():
            if value not in ("", None):
                env[f"CAREPATH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        env["CAREPATH_MIGRATE_ON_START"] = "false"
        self.workers = [subprocess.Popen([sys.executable, "-m", "carepath.cli", "worker"], env=env,
                                         stdout=subprocess.DEVNULL) for _ in range(count)]  # fmt: skip

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait(timeout=60)

    async def sample(self) -> None:
        for worker in self.workers:
            status = Path(f"/proc/{worker.pid}/status").read_text()
            rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
            self.peak_rss_mb = max(self.peak_rss_mb, rss / 1024)
        async with self.repository.reader() as tx:
            self.peak_outbox = max(self.peak_outbox, (await outbox.backlog(tx.conn))[0])

    async def settled(self, outbound_at_least: int = 0) -> bool:
        s = self.settings
        for shard in shards(s):
            group = next(g for g in await self.redis.xinfo_groups(shard.stream)
                         if g["name"] == s.events_group.encode())  # fmt: skip
            if group["pending"] or group["lag"]:
                return False
        return bool(await self.redis.xlen(s.events_outbound_stream) >= outbound_at_least)

    async def balanced(self) -> None:
        """Wait until the workers run and have spread over the shards (each shard held, by as many workers as can),
        so a timed phase measures consumption, not start-up."""
        while True:
            holders = [await self.redis.get(shard.lease) for shard in shards(self.settings)]
            live = await self.redis.zcard(workers_key(self.settings))
            if live == len(self.workers) and None not in holders and len(set(holders)) == min(live, len(holders)):
                return
            await asyncio.sleep(0.1)

    async def cpu(self, conn: asyncpg.Connection) -> dict[str, float]:
        """CPU seconds so far of each worker process and of the PostgreSQL backends serving them."""
        pids = [worker.pid for worker in self.workers]
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])",
                                sorted(_socket_ports(pids)))  # fmt: skip
        return {**{f"worker{n}": _cpu(pid) for n, pid in enumerate(pids)},
                **{f"backend{r['pid']}": _cpu(r["pid"]) for r in rows}}  # fmt: skip

    async def wait(self, outbound_at_least: int = 0) -> float:
        while not await self.settled(outbound_at_least):
            await self.sample()
            await asyncio.sleep(0.05)
        return time.perf_counter()

    async def patients(self, count: int) -> list[str]:
        async with self.repository.transaction() as tx:
            return [(await tx.create({"resourceType": "Patient"})).relative_url for _ in range(count)]

    async def send_all(self, entries: list[bytes]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for subject, raw in entries:
            pipe.xadd(shard_for(self.settings, subject).stream, {"event": raw})
        await pipe.execute()


async def metered(run: Run, phase: Any) -> dict[str, Any]:
    """A phase's figures plus the CPU its workers and their database backends spent, in seconds and in units."""
    conn = await asyncpg.connect(_raw_dsn(run.settings.database_url))
    try:
        unit_before, load_before, before = sum_unit_ms(), os.getloadavg(), await run.cpu(conn)
        figures: dict[str, Any] = await phase()
        after, load_after = await run.cpu(conn), os.getloadavg()
        unit = (unit_before + sum_unit_ms()) / 2
    finally:
        await conn.close()
    spent = {key: value - before.get(key, 0.0) for key, value in after.items()}
    workers = {key: round(value, 2) for key, value in spent.items() if key.startswith("worker")}
    database = sum(value for key, value in spent.items() if key.startswith("backend"))
    per_event = (sum(workers.values()) + database) * 1000 / unit / figures["events"]
    return {**figures, "cpu_s": {**workers, "database": round(database, 2)}, "unit_ms": round(unit, 1),
            "cpu_units_per_event": round(per_event, 2), "load": [load_before[0], load_after[0]]}  # fmt: skip


async def data_events(run: Run, count: int) -> dict[str, Any]:
    subjects = await run.patients(50)
    entries = [(subjects[n % 50], event(heart_rate(subjects[n % 50], n), subjects[n % 50])) for n in range(count)]
    started = time.perf_counter()
    await run.send_all(entries)
    elapsed = await run.wait() - started
    return {"events": count, "seconds": round(elapsed, 2), "events_per_s": round(count / elapsed, 1)}


async def enrolments(run: Run, count: int) -> dict[str, Any]:
    subjects = await run.patients(count)
    before = await run.redis.xlen(run.settings.events_outbound_stream)
    started = time.perf_counter()
    await run.send_all([(s, event(worsened(s), s)) for s in subjects])
    elapsed = await run.wait(outbound_at_least=before + count * 17) - started  # a CarePlan + 16 Tasks each
    return {"events": count, "seconds": round(elapsed, 2), "events_per_s": round(count / elapsed, 1)}


async def paced(run: Run, seconds: int, rate: float) -> dict[str, Any]:
    subjects = await run.patients(int(seconds * rate))
    sent: dict[str, datetime] = {}
    started = time.perf_counter()
    for n, subject in enumerate(subjects):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        sent[subject] = datetime.now(UTC)
        await run.redis.xadd(shard_for(run.settings, subject).stream, {"event": event(worsened(subject), subject)})
        if n % 10 == 0:
            await run.sample()
    await run.wait()
    latencies = []
    async with run.repository.reader() as tx:
        for subject, at in sent.items():
            for _, careplan in await tx.search(parse_search("CarePlan", [("subject", subject)])):
                latencies.append((careplan.last_updated.replace(tzinfo=UTC) - at).total_seconds() * 1000)
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)  # noqa: E731
    return {"events": len(subjects), "rate_per_s": rate, "careplans": len(latencies), "p50_ms": pick(0.5),
            "p99_ms": pick(0.99)}  # fmt: skip


async def main(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench:{uuid.uuid4().hex[:10]}"
    async with fresh_schema(args.database_url) as (schema, pg_version):
        settings = Settings(
            database_url=args.database_url, database_schema=schema, redis_url=args.redis_url,
            events_inbound_stream=f"{prefix}:inbound", events_outbound_stream=f"{prefix}:events",
            events_dead_stream=f"{prefix}:inbound:dead", events_block_ms=200, events_poll_ms=20,
            events_inbound_shards=args.shards,
        )  # fmt: skip
        await upgrade_async(settings.effective_database_url, schema)
        engine = create_engine(settings.effective_database_url, schema=schema)
        redis = Redis.from_url(args.redis_url)
        run = Run(settings, Repository(engine), redis)
        try:
            await load_pathways(run.repository, ROOT / "pathways")
            for shard in shards(settings):
                await redis.xgroup_create(shard.stream, settings.events_group, id="0", mkstream=True)
            run.start_workers(args.workers)
            await asyncio.wait_for(run.balanced(), timeout=120)
            phases = args.phases.split(",")
            figures: dict[str, Any] = {"machine": machine(pg_version), "load_before": os.getloadavg(),
                                       "workers": args.workers, "shards": args.shards}  # fmt: skip
            if "data" in phases:
                figures["data_events"] = await metered(run, lambda: data_events(run, args.data_events))
            if "enrolments" in phases:
                figures["enrolments"] = await metered(run, lambda: enrolments(run, args.enrolments))
            if "paced" in phases:
                figures["paced_enrolments"] = await paced(run, args.paced_seconds, args.rate)
            figures["load_after"] = os.getloadavg()
            figures["peak_worker_rss_mb"] = round(run.peak_rss_mb, 1)
            figures["peak_outbox_rows"] = run.peak_outbox
        finally:
            run.stop_workers()
            keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
            await engine.dispose()
    return figures


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    print(json.dumps(result, indent=2))
    if arguments.jsonl:
        with arguments.jsonl.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
    if arguments.write:
        with (ROOT / "bench" / "events-results.json").open("w") as handle:
            json.dump(result, handle, indent=2)

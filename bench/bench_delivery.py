"""Delivery benchmark (issue 11): enrolment throughput with one active Task Subscription vs without, and the
notification latency after commit. PostgreSQL, in a fresh schema (dropped afterwards).

    python bench/bench_delivery.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Enrolments are persisted `$apply`s of the shipped pathway (`chemo-failure-follow-up`) to sample patients (the
clinical spec's scenario records, one copy per enrolment), called through the same service function the API
uses, from `--concurrency` concurrent callers in this process. The delivery duty runs in a separate process
(as `carepath worker` would), for both the runs without and with the Subscription, so the only difference is the
Subscription: `Task?` with `payload: application/fhir+json`, delivered to a receiver thread in this process on
127.0.0.1. Runs alternate without / with, `--rounds` times. Latency = arrival at the receiver minus the Task
version's `meta.lastUpdated` (set just before its commit, so slightly pessimistic).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select

from carepath.content.samples import SCENARIOS
from carepath.demo import PATHWAY_URL
from carepath.service.apply import apply_plan
from carepath.service.bundles import run_transaction
from carepath.service.interactions import Interaction, execute_crud
from carepath.service.parameters import OperationInput
from carepath.service.pathways import load_pathways
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository
from carepath.store.schema import delivery_change, subscription_notification, subscription_state

ROOT = Path(__file__).resolve().parents[1]
RECEIVER_DIR = ROOT / "tests" / "integration"  # the tests' loopback receiver: one implementation
# The receiver runs in its own process (it stands for another machine; in this process it would take the GIL
# from the enrolments): it prints its URL, and on a line on stdin every request's arrival time and body.
_RECEIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from receiver import Receiver

with Receiver() as receiver:
    print(receiver.url, flush=True)
    sys.stdin.readline()
    print(json.dumps([[r.arrived, r.body.decode()] for r in receiver.requests if r.body]), flush=True)
"""

_DUTY = """
import asyncio
from carepath.delivery.duty import delivery_duty
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.repository import Repository

async def main() -> None:
    s = Settings()
    await delivery_duty(Repository(create_engine(s.effective_database_url, schema=s.database_schema)), s)(
        asyncio.Event())

asyncio.run(main())
"""


def _latencies(requests: list[list[Any]], committed: dict[str, float]) -> tuple[list[float], list[float]]:
    """Per notified Task: arrival minus its enrolment's commit (apply returned), and minus its `meta.lastUpdated`
    (stamped when the Task was created inside the enrolment's transaction: an upper bound)."""
    after_commit, after_stamp = [], []
    for arrived, body in requests:
        task = json.loads(body)
        stamp = datetime.fromisoformat(task["meta"]["lastUpdated"].replace("Z", "+00:00")).timestamp()
        after_commit.append(arrived - committed[task["for"]["reference"]])
        after_stamp.append(arrived - stamp)
    return sorted(after_commit), sorted(after_stamp)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _scalar(repository: Repository, stmt: Any) -> int:
    async with repository.reader() as tx:
        return int((await tx.conn.execute(stmt)).scalar_one())


async def _store_patients(repository: Repository, count: int, now: datetime) -> list[str]:
    keys = []
    for i in range(count):
        case = replace(SCENARIOS[i % len(SCENARIOS)], key=f"b{i}-{SCENARIOS[i % len(SCENARIOS)].key}"[:60])
        async with repository.transaction() as tx:
            await run_transaction(tx, case.upsert(now)["entry"], "")
        keys.append(case.key)
    return keys


async def _enrol(
    repository: Repository, plan_id: str, patients: list[str], concurrency: int, committed: dict[str, float],
    rate: float = 0.0,
) -> float:  # fmt: skip
    """Enrolments per second over the whole run (`rate` > 0: started at that pace); `committed` gets each patient's
    commit time (when apply returned)."""
    queue = list(patients)
    started = time.perf_counter()
    count = 0

    async def caller() -> None:
        nonlocal count
        while queue:
            key = queue.pop()
            if rate:
                count += 1
                await asyncio.sleep(max(0.0, started + count / rate - time.perf_counter()))
            inputs = OperationInput({"subject": [f"Patient/{key}"], "persist": [True]})
            response = await apply_plan(repository, plan_id, inputs, idempotency_key=None)
            assert response.body.get("resourceType") == "CarePlan", response.body
            committed[f"Patient/{key}"] = time.time()

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(patients) / (time.perf_counter() - started)


async def _drained(repository: Repository, subscribed: bool, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    note = subscription_notification.c
    while time.monotonic() < deadline:
        changes = await _scalar(repository, select(func.count()).select_from(delivery_change))
        pending = await _scalar(repository, select(func.count()).where(note.status == "pending")) if subscribed else 0
        if not changes and not pending:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("delivery did not drain in time")


async def _active(repository: Repository) -> bool:
    return await _scalar(repository, select(func.count()).where(subscription_state.c.status == "active")) > 0


async def _subscription(repository: Repository, sub_id: str | None, endpoint: str, on: bool) -> str | None:
    """The one `Task?` Subscription: created or re-requested (then active after the worker's handshake), or off."""
    if sub_id is None and not on:
        return None
    async with repository.transaction() as tx:
        if sub_id is None:
            body = {
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "bench",
                "criteria": "Task?",
                "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
            }
            stored = (await execute_crud(tx, Interaction("create", "Subscription", body=body))).stored
            assert stored is not None
            sub_id = stored.res_id
        else:
            current = (await tx.read("Subscription", sub_id)).json()
            current["status"] = "requested" if on else "off"
            await execute_crud(tx, Interaction("update", "Subscription", sub_id, body=current))
    while on and not await _active(repository):
        await asyncio.sleep(0.1)
    return sub_id


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--enrolments", type=int, default=60, help="per run")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (without, with)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--paced-rate", type=float, default=10.0, help="enrolments/s of the latency run")
    args = parser.parse_args()
    schema = f"bench_delivery_{uuid.uuid4().hex[:8]}"
    raw = args.database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(raw)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    worker = None
    try:
        await upgrade_async(args.database_url, schema)
        engine = create_engine(args.database_url, schema=schema)
        repository = Repository(engine)
        await load_pathways(repository, ROOT / "pathways")
        async with repository.reader() as tx:
            plan = await tx.find_definition("PlanDefinition", PATHWAY_URL)
        assert plan is not None
        patients = await _store_patients(
            repository, args.enrolments * args.rounds * 2 + args.concurrency, datetime.now(UTC)
        )
        receiver = subprocess.Popen([sys.executable, "-c", _RECEIVER, str(RECEIVER_DIR)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert receiver.stdin is not None and receiver.stdout is not None
        receiver_url = receiver.stdout.readline().strip()
        env = {**os.environ, "CAREPATH_DATABASE_URL": args.database_url, "CAREPATH_DATABASE_SCHEMA": schema,
               "CAREPATH_SUBSCRIPTION_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
        worker = subprocess.Popen([sys.executable, "-c", _DUTY], env=env)
        results: dict[str, list[float]] = {"without": [], "with": []}
        committed: dict[str, float] = {}
        worker_cpu: dict[str, list[float]] = {"without": [], "with": []}
        # Warm-up (definition cache, compiled FHIRPath, connection pool), not counted.
        await _enrol(repository, plan["id"], patients[-args.concurrency :], args.concurrency, committed)
        await _drained(repository, False)
        sub_id: str | None = None
        for run in range(args.rounds * 2):
            subscribed = run % 2 == 1
            sub_id = await _subscription(repository, sub_id, receiver_url + "/fhir", subscribed)
            batch = patients[run * args.enrolments : (run + 1) * args.enrolments]
            cpu = _cpu_s(worker.pid)
            rate = await _enrol(repository, plan["id"], batch, args.concurrency, committed)
            await _drained(repository, subscribed)
            worker_cpu["with" if subscribed else "without"].append((_cpu_s(worker.pid) - cpu) / len(batch))
            results["with" if subscribed else "without"].append(rate)
            print(f"run {run + 1}: {'with' if subscribed else 'without'} Subscription: {rate:.1f} enrolments/s",
                  flush=True)  # fmt: skip
        # Latency at a steady pace (the runs above enrol as fast as they can, a burst the sender queues behind).
        sub_id = await _subscription(repository, sub_id, receiver_url + "/fhir", True)
        paced = patients[args.rounds * 2 * args.enrolments : (args.rounds * 2 + 1) * args.enrolments]
        await _enrol(repository, plan["id"], paced, args.concurrency, committed, rate=args.paced_rate)
        await _drained(repository, True)
        receiver.stdin.write("done\n")
        receiver.stdin.flush()
        received = json.loads(receiver.stdout.readline())
        lat, upper = _latencies(received, committed)
        steady = {f"Patient/{key}" for key in paced}
        paced_lat, _ = _latencies([r for r in received if json.loads(r[1])["for"]["reference"] in steady], committed)
        receiver.wait(timeout=30)
        report = {
            "enrolments_per_run": args.enrolments, "concurrency": args.concurrency,
            "without_per_s": results["without"], "with_per_s": results["with"],
            "ratio": statistics.median(results["with"]) / statistics.median(results["without"]),
            "notifications": len(lat),
            "worker_cpu_ms_per_enrolment": {k: [round(v * 1000, 1) for v in vs] for k, vs in worker_cpu.items()},
            f"paced_{args.paced_rate:g}_per_s_after_commit_p50_s": _p(paced_lat, 0.5),
            f"paced_{args.paced_rate:g}_per_s_after_commit_p99_s": _p(paced_lat, 0.99),
            "after_commit_p50_s": _p(lat, 0.5), "after_commit_p99_s": _p(lat, 0.99), "after_commit_max_s": lat[-1],
            "after_task_stamp_p50_s": _p(upper, 0.5), "after_task_stamp_p99_s": _p(upper, 0.99),
        }  # fmt: skip
        print(json.dumps(report, indent=2))
        await engine.dispose()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Load for the FHIR server benchmark: realistic worklist Tasks, seeding through the API, timed HTTP requests.

Every measured operation is one HTTP request on a keep-alive httpx connection; the latency is the wall time the
client waits for the complete response, so client-side HTTP overhead is included (as a FHIR client would see it).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"
# handling=strict: a misspelled search parameter must fail the run, not be ignored and measure something else.
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "Prefer": "handling=strict"}
# A coordinator's worklist is mostly open work; closed Tasks stay stored and must not slow the open ones down.
STATUS_WEIGHTS = {"requested": 25, "ready": 15, "in-progress": 15, "on-hold": 5, "completed": 30, "cancelled": 10}
WORKLIST_STATUSES = "requested,ready"

Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Timing:
    """Latencies (ms) of one operation and, for concurrent runs, the achieved rate."""

    name: str
    latencies_ms: list[float]
    wall_s: float
    items_per_request: int = 1
    requests: int = 0  # every request sent, warm-up included: the server's CPU time covers them all
    server_cpu_s: float | None = None  # CPU the server process used during the run

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        figures = {
            "n": len(ordered),
            "p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(_percentile(ordered, 0.95), 3),
            "p99_ms": round(_percentile(ordered, 0.99), 3),
            "max_ms": round(ordered[-1], 3),
            "resources_per_s": round(len(ordered) * self.items_per_request / self.wall_s, 1),
        }
        if self.server_cpu_s is not None:
            figures["server_cpu_ms"] = round(self.server_cpu_s * 1000 / self.requests, 3)
        return figures


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the samples at or below it."""
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Workload:
    """The shape of the seeded data; one seed makes every run identical."""

    owners: int = 200
    patients: int = 5000
    seed: int = 20261129

    def owner(self, index: int) -> str:
        return f"Practitioner/bench-owner-{index % self.owners:03d}"


def make_task(rng: random.Random, workload: Workload, now: datetime) -> dict[str, Any]:
    """A Task as the pathway engine creates them: owner, patient, status, priority and a due date."""
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    due = now + timedelta(days=rng.uniform(-30, 90))
    authored = due - timedelta(days=rng.uniform(7, 60))
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "priority": "urgent" if rng.random() < 0.1 else "routine",
        "description": f"Pathway step {rng.randrange(1, 40)}: follow-up after treatment failure",
        "for": {"reference": f"Patient/bench-patient-{rng.randrange(workload.patients):05d}"},
        "owner": {"reference": workload.owner(rng.randrange(workload.owners))},
        "authoredOn": authored.isoformat(timespec="seconds"),
        "restriction": {"period": {"end": due.isoformat(timespec="seconds")}},
    }


def transaction_bundle(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": task, "request": {"method": "POST", "url": "Task"}}
        for task in tasks
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def task_factory(workload: Workload) -> Callable[[], dict[str, Any]]:
    rng, now = random.Random(workload.seed), datetime.now(UTC)
    return lambda: make_task(rng, workload, now)


async def post_transaction(client: httpx.AsyncClient, tasks: list[dict[str, Any]]) -> list[str]:
    """POST one transaction Bundle of creates; the new Task ids."""
    response = await client.post("/fhir", json=transaction_bundle(tasks), headers=HEADERS)
    expect(response, 200)
    return [entry["response"]["location"].split("/")[1] for entry in response.json()["entry"]]


async def seed(
    base_url: str, total: int, next_task: Callable[[], dict[str, Any]], *, batch: int, clients: int
) -> tuple[list[str], float]:
    """Store `total` Tasks through transaction Bundles from `clients` concurrent connections; (ids, seconds)."""
    batches = [min(batch, total - start) for start in range(0, total, batch)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for size in batches:  # built up front so the clock measures the server, not the payload generator
        queue.put_nowait([next_task() for _ in range(size)])
    ids: list[str] = []
    report_every = max(1, len(batches) // 10)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
            while not queue.empty():
                ids.extend(await post_transaction(client, queue.get_nowait()))
                if (len(ids) // batch) % report_every == 0:
                    print(f"  seeded {len(ids):,} / {total:,}", flush=True)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return ids, time.perf_counter() - started


def expect(response: httpx.Response, status: int) -> None:
    """A benchmark that times errors measures nothing: stop at the first unexpected answer."""
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:500]}"
        )


async def timed(client: httpx.AsyncClient, request: Request, status: int) -> float:
    started = time.perf_counter()
    response = await request(client)
    elapsed = (time.perf_counter() - started) * 1000
    expect(response, status)
    return elapsed


async def run_sequential(
    name: str, base_url: str, request: Request, *, n: int, warmup: int, status: int = 200, items_per_request: int = 1
) -> Timing:
    """`n` requests one after another on one keep-alive connection, after `warmup` untimed ones."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for _ in range(warmup):
            await timed(client, request, status)
        started = time.perf_counter()
        latencies = [await timed(client, request, status) for _ in range(n)]
        return Timing(name, latencies, time.perf_counter() - started, items_per_request, requests=n + warmup)


async def run_concurrent(
    name: str, base_url: str, request: Request, *, n: int, clients: int, warmup: int, status: int = 200
) -> Timing:
    """`n` requests shared by `clients` concurrent connections (each one request at a time)."""
    connections = [httpx.AsyncClient(base_url=base_url, timeout=60) for _ in range(clients)]
    remaining = n
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await timed(client, request, status))

    try:
        await asyncio.gather(*(timed(c, request, status) for c in connections for _ in range(warmup)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        return Timing(name, latencies, time.perf_counter() - started, requests=n + warmup * clients)
    finally:
        await asyncio.gather(*(c.aclose() for c in connections))

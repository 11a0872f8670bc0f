"""FHIR server benchmark (issue 2): the real server over HTTP on PostgreSQL, with N Tasks stored.

    python bench/bench_fhir_server.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test [--tasks 100000]

Starts `carepath serve` in a subprocess on a free loopback port, in a fresh PostgreSQL schema (dropped afterwards),
seeds the Tasks through transaction Bundles, then times read, create (1 and 4 clients), the worklist search and a
100-entry transaction Bundle. Prints a table and writes the figures to bench/out/<label>-<time>.json.
`--server-src DIR` runs the server from another checkout's `services/` folder (to compare revisions in one session).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from fhir_load import (
    HEADERS,
    WORKLIST_STATUSES,
    Timing,
    Workload,
    expect,
    run_concurrent,
    run_sequential,
    seed,
    task_factory,
    transaction_bundle,
)

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
# (operation, statistic, limit, higher is better): the targets of issue 2.
TARGETS = [
    ("read", "p50_ms", 1.5, False),
    ("create", "p50_ms", 4.0, False),
    ("create x4", "resources_per_s", 500.0, True),
    ("worklist search", "p95_ms", 30.0, False),
    ("transaction 100", "p50_ms", 150.0, False),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, label="run")
    parser.add_argument("--tasks", type=int, default=100_000, help="Tasks stored before measuring")
    parser.add_argument("--owners", type=int, default=200, help="distinct Task owners (worklists)")
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--creates", type=int, default=1000, help="creates timed per create run")
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--transactions", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the create throughput run")
    parser.add_argument("--seed-batch", type=int, default=500, help="Tasks per seeding transaction Bundle")
    parser.add_argument("--seed-clients", type=int, default=2)
    return parser.parse_args(argv)


def add_server_arguments(parser: argparse.ArgumentParser, *, label: str) -> None:
    """The options of every benchmark that runs the real server (`running_server`)."""
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://user@host:port/database")
    parser.add_argument("--label", default=label, help="names the JSON result file")
    parser.add_argument("--server-src", type=Path, help="a services/ folder to run the server from")
    parser.add_argument("--workers", type=int, default=1, help="server processes (`carepath serve --workers`)")
    parser.add_argument("--startup-timeout", type=float, default=120.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server and its worker processes have used (Linux /proc; None elsewhere)."""
        own = _proc_stat(self.pid)
        if own is None:
            return None
        workers = [stat for stat in map(_proc_stat, _children(self.pid)) if stat is not None]
        return sum(int(f[11]) + int(f[12]) for f in [own, *workers]) / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and int(stat[1]) == pid:
            found.append(int(entry.name))
    return found


def _raw_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def fresh_schema(database_url: str) -> AsyncIterator[tuple[str, str]]:
    """A new PostgreSQL schema for this run, dropped afterwards whatever happens; (schema, server version)."""
    schema = f"carepath_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_raw_dsn(database_url))
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield schema, version
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


def server_env(args: argparse.Namespace, schema: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a carepath process (`serve`, `worker`) of this run; `extra` overrides."""
    env = {
        **os.environ,
        "CAREPATH_DATABASE_URL": args.database_url,
        "CAREPATH_DATABASE_SCHEMA": schema,
        "CAREPATH_LOAD_PATHWAYS_ON_START": "false",
        "CAREPATH_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    if args.server_src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(args.server_src.resolve()), env.get("PYTHONPATH")) if p)
    return env


@asynccontextmanager
async def running_server(
    args: argparse.Namespace, schema: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """`carepath serve` on 127.0.0.1:<free port>, stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    env = server_env(args, schema, extra_env)
    command = [sys.executable, "-m", "carepath.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(args.workers)]  # fmt: skip
    with carepath_process(command, env, log_path) as process:
        base_url = f"http://127.0.0.1:{port}"
        await _wait_healthy(base_url, process, args.startup_timeout, log_path)
        yield Server(base_url, process.pid)


@contextmanager
def carepath_process(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess logging to `log_path`, stopped (SIGTERM, then SIGKILL) on exit."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def settle(database_url: str, schema: str) -> float:
    """VACUUM (ANALYZE) the seeded tables; seconds taken.

    A server that has held 100,000 Tasks for a while has been vacuumed and analysed by autovacuum; right after a
    bulk load PostgreSQL has neither statistics nor a visibility map, and plans and index-only scans suffer.
    Measuring that transient would misstate the steady state, so the benchmark does explicitly what autovacuum
    would do within minutes.
    """
    started = time.perf_counter()
    conn = await asyncpg.connect(_raw_dsn(database_url))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        for row in tables:
            await conn.execute(f'VACUUM (ANALYZE) "{schema}"."{row["tablename"]}"')
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log_path}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s; see {log_path}")


def machine(pg_version: str) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.strip()
    revision = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": free,
        "postgresql": pg_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": revision,
    }


async def check_worklist(base_url: str, workload: Workload) -> None:
    """The timed search must really answer a full, sorted worklist page; a fast wrong answer proves nothing."""
    params = _worklist_params(workload.owner(0))
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        response = await client.get("/fhir/Task", params=params, headers=HEADERS)
        counted = await client.get("/fhir/Task", params={**params, "_summary": "count"}, headers=HEADERS)
    expect(response, 200)
    expect(counted, 200)
    tasks = [e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]
    due = [t["restriction"]["period"]["end"] for t in tasks]
    wrong_status = {t["status"] for t in tasks} - set(WORKLIST_STATUSES.split(","))
    if not tasks or len(tasks) != min(50, counted.json()["total"]) or due != sorted(due) or wrong_status:
        raise RuntimeError(f"the worklist search answered {len(tasks)} Tasks, not a sorted page of open ones")


def _worklist_params(owner: str) -> dict[str, str]:
    return {"owner": owner, "status": WORKLIST_STATUSES, "_sort": "due-date", "_count": "50"}


async def measure(server: Server, args: argparse.Namespace, workload: Workload, ids: list[str]) -> list[Timing]:
    base_url = server.url
    rng = random.Random(workload.seed + 1)
    next_task = task_factory(Workload(workload.owners, workload.patients, workload.seed + 2))

    def read(client: httpx.AsyncClient) -> Any:
        return client.get(f"/fhir/Task/{rng.choice(ids)}", headers=HEADERS)

    def search(client: httpx.AsyncClient) -> Any:
        owner = workload.owner(rng.randrange(workload.owners))
        return client.get("/fhir/Task", params=_worklist_params(owner), headers=HEADERS)

    def create(client: httpx.AsyncClient) -> Any:
        return client.post("/fhir/Task", json=next_task(), headers=HEADERS)

    def transaction(client: httpx.AsyncClient) -> Any:
        return client.post("/fhir", json=transaction_bundle([next_task() for _ in range(100)]), headers=HEADERS)

    await check_worklist(base_url, workload)
    return [
        await _with_cpu(server, run_sequential("read", base_url, read, n=args.reads, warmup=200)),
        await _with_cpu(server, run_sequential("worklist search", base_url, search, n=args.searches, warmup=50)),
        await _with_cpu(server, run_sequential("create", base_url, create, n=args.creates, warmup=100, status=201)),
        await _with_cpu(
            server,
            run_concurrent(
                "create x4", base_url, create, n=args.creates * 2, clients=args.clients, warmup=20, status=201
            ),
        ),
        await _with_cpu(
            server,
            run_sequential(
                "transaction 100", base_url, transaction, n=args.transactions, warmup=3, items_per_request=100
            ),
        ),
    ]


async def _with_cpu(server: Server, run: Awaitable[Timing]) -> Timing:
    """The run's timing plus the server's CPU time per request: a figure other load on the machine barely moves."""
    before = server.cpu_seconds()
    timing = await run
    after = server.cpu_seconds()
    return timing if before is None or after is None else replace(timing, server_cpu_s=after - before)


def write_report(report: dict[str, Any], name: str) -> Path:
    """The run's figures as JSON under bench/out/ (git-ignored)."""
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {path}")
    return path


def verdicts(
    results: dict[str, dict[str, float]], targets: Sequence[tuple[str, str, float, bool]] = TARGETS
) -> list[dict[str, Any]]:
    """Each target (operation, statistic, limit, higher-is-better) with the measured value and whether it is met."""
    out = []
    for name, stat, limit, higher in targets:
        value = results[name][stat]
        met = value >= limit if higher else value <= limit
        out.append({"operation": name, "statistic": stat, "target": limit, "value": value, "met": met})
    return out


def print_table(results: dict[str, dict[str, float]], checks: list[dict[str, Any]]) -> None:
    print(
        f"\n{'operation':<18}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}{'res/s':>10}{'cpu ms':>9}"
    )
    for name, s in results.items():
        print(
            f"{name:<18}{s['n']:>6.0f}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['p99_ms']:>10.2f}"
            f"{s['max_ms']:>10.1f}{s['resources_per_s']:>10.0f}{s.get('server_cpu_ms', float('nan')):>9.2f}"
        )
    print()
    for c in checks:
        sign = ">=" if c["statistic"] == "resources_per_s" else "<="
        print(
            f"{'MET ' if c['met'] else 'MISS'} {c['operation']} {c['statistic']} {c['value']} "
            f"(target {sign} {c['target']})"
        )


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workload = Workload(owners=args.owners)
    log_path = OUT_DIR / f"{args.label}-{stamp}-server.log"
    async with (
        fresh_schema(args.database_url) as (schema, pg_version),
        running_server(args, schema, log_path) as server,
    ):
        print(f"server {server.url}, schema {schema}; seeding {args.tasks:,} Tasks", flush=True)
        ids, seconds = await seed(
            server.url, args.tasks, task_factory(workload), batch=args.seed_batch, clients=args.seed_clients
        )
        print(f"seeded in {seconds:.1f} s ({args.tasks / seconds:.0f} Tasks/s); VACUUM (ANALYZE)", flush=True)
        vacuum_s = await settle(args.database_url, schema)
        print(f"vacuumed in {vacuum_s:.1f} s; measuring", flush=True)
        load_before = os.getloadavg()
        timings = await measure(server, args, workload, ids)
    # Other processes on the machine (test runs, builds) inflate the figures: the 1-minute load says how much.
    load = {"before_measuring": load_before[0], "after_measuring": os.getloadavg()[0]}
    results = {t.name: t.summary() for t in timings}
    checks = verdicts(results)
    print_table(results, checks)
    print(f"1-minute load average: {load['before_measuring']:.2f} before, {load['after_measuring']:.2f} after")
    report = {
        "label": args.label,
        "started": stamp,
        "machine": machine(pg_version),
        "config": {k: str(v) for k, v in vars(args).items() if k != "database_url"},
        "seed": {"tasks": args.tasks, "seconds": round(seconds, 1), "vacuum_analyze_seconds": round(vacuum_s, 1)},
        "load_average_1min": load,
        "results": results,
        "targets": checks,
    }
    write_report(report, f"{args.label}-{stamp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

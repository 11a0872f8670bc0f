"""Where an `$apply` spends its CPU: the service function in-process on PostgreSQL, under cProfile.

    python bench/profile_apply.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test [--calls 100]
        [--pathway shipped|bench] [--transient] [--top 15]

Stores the shipped pathway and the ten sample patients of the clinical specification (`--pathway bench`: the
10-action plan of bench_apply_http.py and 50 of its patients) in a fresh schema (dropped afterwards), warms up,
then profiles `--calls` persisted (or `--transient`) applies round-robin over the patients with
`time.process_time` as the profiler's clock. Self time is summed per package, which partitions the CPU without
double counting: FHIR model validation (fhir.resources / fhir_core / pydantic), FHIRPath (fhirpathpy and the
compiled subset), the engine, search-index extraction, the database layer (SQLAlchemy, asyncpg, greenlet),
JSON, and the rest. Profiling inflates many small calls, so read the shares, not the absolute times; no HTTP is
involved (the server's routing and rendering are not in these figures). `--top N` also prints the N functions
with the most cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench_apply_http import ACTIVITIES, patient_entries, plan_definition
from bench_fhir_server import fresh_schema

from carepath.content.samples import SCENARIOS
from carepath.service.apply import apply_plan
from carepath.service.bundles import run_transaction
from carepath.service.parameters import OperationInput
from carepath.service.pathways import load_pathways
from carepath.store.database import create_engine
from carepath.store.migrate import upgrade_async
from carepath.store.repository import Repository

PATHWAYS = Path(__file__).resolve().parents[1] / "pathways"
SHIPPED_URL = "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"
# (bucket, path fragments of the defining file), first match wins.
BUCKETS = [
    ("FHIR model validation", ("/fhir/resources/", "/fhir_core/", "/pydantic", "carepath/fhir/validation",
                               "carepath/fhir/valid_items", "carepath/fhir/bindings")),
    ("FHIRPath", ("/fhirpathpy/", "/antlr4/", "carepath/fhir/compiled", "carepath/fhir/fhirpath")),
    ("search-index extraction", ("carepath/fhir/search",)),
    ("engine", ("carepath/engine",)),
    ("database layer", ("/sqlalchemy/", "/asyncpg/", "greenlet", "carepath/store")),
    ("JSON", ("orjson", "carepath/jsonutil", "/json/")),
    ("asyncio", ("/asyncio/", "uvloop")),
    ("service", ("carepath/service",)),
]  # fmt: skip


def bucket(filename: str) -> str:
    return next((name for name, parts in BUCKETS if any(p in filename for p in parts)), "other")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--pathway", choices=("shipped", "bench"), default="shipped")
    parser.add_argument("--transient", action="store_true", help="persist=false: nothing stored")
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with most cumulative time")
    args = parser.parse_args(argv)
    async with fresh_schema(args.database_url) as (schema, _):
        await upgrade_async(args.database_url, schema)
        engine = create_engine(args.database_url, schema=schema)
        try:
            repository = Repository(engine)
            store = _store_bench if args.pathway == "bench" else _store_shipped
            plan_id, subjects = await store(repository)

            async def call(i: int) -> None:
                inputs = OperationInput({"subject": [subjects[i % len(subjects)]], "persist": [not args.transient]})
                response = await apply_plan(repository, plan_id, inputs, idempotency_key=None, now=datetime.now(UTC))
                assert response.status == 200

            for i in range(20):
                await call(i)
            profiler = cProfile.Profile(time.process_time)
            started = time.process_time()
            profiler.enable()
            for i in range(args.calls):
                await call(i)
            profiler.disable()
            total = time.process_time() - started
        finally:
            await engine.dispose()
    shares: dict[str, float] = defaultdict(float)
    stats = pstats.Stats(profiler)
    for (filename, _, _), (_, _, self_time, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename != "~":
            shares[bucket(filename)] += self_time
            continue
        # A built-in (dict.get, isinstance, a pydantic-core validator) counts for whoever called it.
        for (caller_file, _, _), (_, _, caller_share, _) in callers.items():
            shares[bucket(caller_file) if caller_file != "~" else "other"] += caller_share
    profiled = sum(shares.values())
    mode = "transient" if args.transient else "persisted"
    print(f"{args.calls} {mode} applies of the {args.pathway} pathway: {total * 1000 / args.calls:.1f} ms CPU per "
          f"call under the profiler (in-process, no HTTP)\n")  # fmt: skip
    for name, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"{name:<26}{100 * seconds / profiled:>6.1f} %")
    if args.top:
        print()
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


async def _store_shipped(repository: Repository) -> tuple[str, list[str]]:
    await load_pathways(repository, PATHWAYS)
    now = datetime.now(UTC)
    for case in SCENARIOS:
        async with repository.transaction() as tx:
            await run_transaction(tx, case.upsert(now)["entry"], "")
    async with repository.reader() as tx:
        plan = await tx.find_definition("PlanDefinition", SHIPPED_URL)
    assert plan is not None
    return str(plan["id"]), [f"Patient/{case.key}" for case in SCENARIOS]


async def _store_bench(repository: Repository) -> tuple[str, list[str]]:
    definitions = [*ACTIVITIES.values(), plan_definition()]
    entries = [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in definitions]
    rng = random.Random(20261129)
    entries += [e for i in range(50) for e in patient_entries(i, rng)]
    async with repository.transaction() as tx:
        responses = await run_transaction(tx, entries, "")
    plan_id = str(responses[len(definitions) - 1]["response"]["location"].split("/")[1])
    return plan_id, [f"Patient/bench-{i:04d}" for i in range(50)]


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

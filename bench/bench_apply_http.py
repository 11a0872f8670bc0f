"""`$apply` benchmark (issue 3): the real server over HTTP on PostgreSQL, with a 10-action PlanDefinition.

    python bench/bench_apply_http.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Starts `carepath serve` on a free loopback port in a fresh PostgreSQL schema (dropped afterwards), stores the
pathway written below (4 FHIRPath conditions over two named variables, ActivityDefinitions of kinds Task,
ServiceRequest and CommunicationRequest, two relatedActions, dynamicValues) and `--patients` patients with an
ECOG and a pain score, checks that `$apply` really evaluates the conditions, then times:
persisted `$apply` one at a time and from 8 concurrent clients (each call with its own Idempotency-Key, as a
client would send), and transient `$apply` from 8 concurrent clients. Prints a table, writes bench/out/*.json.
Codes are from shared/clinical/treatment-failure-pathway.md (through carepath.content.codes and §2's table).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from bench_fhir_server import (
    OUT_DIR,
    Server,
    _with_cpu,
    add_server_arguments,
    fresh_schema,
    machine,
    running_server,
    verdicts,
    write_report,
)
from fhir_load import HEADERS, Timing, expect, run_concurrent, run_sequential

from carepath.canonical import BASE, CODESYSTEM_LOCAL
from carepath.content import codes

# (operation, statistic, limit, higher is better): the HTTP targets of issue 3.
TARGETS = [
    ("persisted sequential", "p50_ms", 12.0, False),
    ("persisted x8", "requests_per_s", 120.0, True),
    ("transient x8", "requests_per_s", 300.0, True),
]
PLAN_URL = f"{BASE}/PlanDefinition/bench-apply"
LATEST = ".aggregate(iif($total.empty(), $this, iif($this.effective > $total.effective, $this, $total))).value"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_arguments(parser, label="apply")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=300, help="persisted calls timed one at a time")
    parser.add_argument("--concurrent", type=int, default=600, help="calls timed per concurrent run")
    parser.add_argument("--clients", type=int, default=8)
    return parser.parse_args(argv)


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _fhirpath(text: str) -> dict[str, Any]:
    return {"language": "text/fhirpath", "expression": text}


def _activity(name: str, kind: str, code: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"resourceType": "ActivityDefinition", "url": f"{BASE}/ActivityDefinition/bench-{name}", "version": "1.0.0",
           "name": name.title().replace("-", ""), "title": name.replace("-", " ").capitalize(), "status": "active",
           "kind": kind}  # fmt: skip
    if kind == "ServiceRequest":
        out["intent"] = "order"
    return {**out, "code": code} if code else out


ACTIVITIES = {
    "ps": _activity("ps-reassessment", "Task", _concept(codes.LOINC, codes.ECOG)),
    "pain": _activity("pain-assessment", "Task", _concept(codes.LOINC, codes.PAIN)),
    "distress": _activity("distress-screening", "Task", _concept(CODESYSTEM_LOCAL, codes.DISTRESS_THERMOMETER)),
    "palliative": _activity("palliative-referral", "ServiceRequest", _concept(codes.SNOMED, "306237005")),
    "psychology": _activity("psychology-referral", "ServiceRequest", _concept(codes.SNOMED, "308459004")),
    "dietitian": _activity("dietitian-referral", "ServiceRequest", _concept(codes.SNOMED, "103699006")),
    "radiotherapy": _activity("radiotherapy-referral", "ServiceRequest", _concept(codes.SNOMED, "306256000")),
    "gp-letter": _activity("gp-letter", "CommunicationRequest"),
}


def _action(action_id: str, activity: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
    definition = ACTIVITIES[activity]
    out: dict[str, Any] = {"id": action_id, "title": f"{definition['title']} ({action_id})",
                           "definitionCanonical": f"{definition['url']}|{definition['version']}", **extra}  # fmt: skip
    if condition is not None:
        out["condition"] = [{"kind": "applicability", "expression": _fhirpath(condition)}]
    return out


def _due(path: str, days: int) -> list[dict[str, Any]]:
    return [{"path": path, "expression": _fhirpath(f"%now + {days} days")}]


def _after(action_id: str, days: int) -> list[dict[str, Any]]:
    offset = {"value": days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
    return [{"actionId": action_id, "relationship": "after-end", "offsetDuration": offset}]


def _observations(code: str) -> str:
    return (f"%data.entry.resource.where(resourceType='Observation' and status='final' and "
            f"code.coding.exists(system='{codes.LOINC}' and code='{code}'))")  # fmt: skip


def plan_definition() -> dict[str, Any]:
    """Ten actions: 4 Tasks, 4 conditional ServiceRequests, 2 CommunicationRequests, two of them timed after others."""
    variables = [("ecog", _observations(codes.ECOG) + LATEST), ("pain", _observations(codes.PAIN) + LATEST)]
    return {
        "resourceType": "PlanDefinition", "url": PLAN_URL, "version": "1.0.0", "name": "BenchApply",
        "title": "Benchmark pathway", "status": "active",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/variable",
                       "valueExpression": {"name": name, **_fhirpath(text)}} for name, text in variables],
        "action": [
            _action("ps", "ps", dynamicValue=_due("restriction.period.end", 7)),
            _action("pain", "pain", dynamicValue=_due("restriction.period.end", 3)),
            _action("distress", "distress"),
            _action("palliative", "palliative", "%ecog >= 3 or %pain >= 7"),
            _action("psychology", "psychology", "%pain >= 4"),
            _action("dietitian", "dietitian", "%ecog >= 2"),
            _action("radiotherapy", "radiotherapy", "%pain >= 6 and %ecog <= 2"),
            _action("gp-start", "gp-letter"),
            _action("gp-result", "gp-letter", relatedAction=_after("ps", 2)),
            _action("review", "ps", relatedAction=_after("pain", 1)),
        ],
    }  # fmt: skip


def patient_entries(index: int, rng: random.Random) -> list[dict[str, Any]]:
    patient_id = f"bench-{index:04d}"
    ref = {"reference": f"Patient/{patient_id}"}
    scores = ((codes.ECOG, rng.randrange(5)), (codes.PAIN, rng.randrange(11)))
    resources = [{"resourceType": "Patient", "id": patient_id, "name": [{"text": f"Bench patient {index}"}]}] + [
        {"resourceType": "Observation", "id": f"{patient_id}-{code}", "status": "final",
         "code": _concept(codes.LOINC, code), "subject": ref, "effectiveDateTime": "2026-01-15T10:00:00Z",
         "valueInteger": score}
        for code, score in scores
    ]  # fmt: skip
    return [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]


async def store_content(base_url: str, patients: int) -> str:
    """The pathway and the patients, through transaction Bundles; the PlanDefinition's id."""
    rng = random.Random(20261129)
    definitions = [*ACTIVITIES.values(), plan_definition()]
    entries = [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in definitions]
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        response = await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                                    "entry": entries}, headers=HEADERS)  # fmt: skip
        expect(response, 200)
        plan_id = str(response.json()["entry"][-1]["response"]["location"].split("/")[1])
        for start in range(0, patients, 50):
            batch = [e for i in range(start, min(start + 50, patients)) for e in patient_entries(i, rng)]
            expect(await client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                                    "entry": batch}, headers=HEADERS), 200)  # fmt: skip
    return plan_id


def _parameters(patient: int, persist: bool) -> dict[str, Any]:
    params = [{"name": "subject", "valueString": f"Patient/bench-{patient:04d}"}]
    return {"resourceType": "Parameters", "parameter": [*params, {"name": "persist", "valueBoolean": persist}]}


async def check_apply(base_url: str, plan_id: str, patients: int) -> None:
    """A fast wrong answer proves nothing: conditions must differ between patients and persisting must store."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        counts = set()
        for patient in range(min(patients, 20)):
            response = await client.post(f"/fhir/PlanDefinition/{plan_id}/$apply", json=_parameters(patient, False),
                                         headers=HEADERS)  # fmt: skip
            expect(response, 200)
            counts.add(len(response.json()["contained"]))
        response = await client.post(f"/fhir/PlanDefinition/{plan_id}/$apply", json=_parameters(0, True),
                                     headers=HEADERS)  # fmt: skip
        expect(response, 200)
        careplan = response.json()
        tasks = await client.get("/fhir/Task", params={"based-on": f"CarePlan/{careplan['id']}", "_summary": "count"},
                                 headers=HEADERS)  # fmt: skip
        expect(tasks, 200)
    if len(counts) < 2 or not careplan.get("id") or tasks.json()["total"] < 4:
        raise RuntimeError(f"$apply did not behave: contained sizes {counts}, stored Tasks {tasks.json()}")


async def measure(server: Server, args: argparse.Namespace, plan_id: str) -> list[Timing]:
    patients = itertools.cycle(range(args.patients))
    path = f"/fhir/PlanDefinition/{plan_id}/$apply"

    def persisted(client: httpx.AsyncClient) -> Any:
        headers = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
        return client.post(path, json=_parameters(next(patients), True), headers=headers)

    def transient(client: httpx.AsyncClient) -> Any:
        return client.post(path, json=_parameters(next(patients), False), headers=HEADERS)

    url, n, clients = server.url, args.concurrent, args.clients
    # Server CPU per request (from /proc) is the figure other load on a shared machine barely moves.
    return [
        await _with_cpu(server, run_sequential("persisted sequential", url, persisted, n=args.sequential, warmup=30)),
        await _with_cpu(server, run_concurrent("persisted x8", url, persisted, n=n, clients=clients, warmup=2)),
        await _with_cpu(server, run_sequential("transient sequential", url, transient, n=args.sequential, warmup=30)),
        await _with_cpu(server, run_concurrent("transient x8", url, transient, n=n, clients=clients, warmup=2)),
    ]


def summarise(timing: Timing) -> dict[str, float]:
    summary = timing.summary()
    summary["requests_per_s"] = summary.pop("resources_per_s")  # one $apply per request
    return summary


def print_table(results: dict[str, dict[str, float]], checks: list[dict[str, Any]]) -> None:
    print(f"\n{'operation':<22}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}{'req/s':>10}"
          f"{'cpu ms':>9}")  # fmt: skip
    for name, s in results.items():
        print(f"{name:<22}{s['n']:>6.0f}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['p99_ms']:>10.2f}"
              f"{s['max_ms']:>10.1f}{s['requests_per_s']:>10.0f}"
              f"{s.get('server_cpu_ms', float('nan')):>9.2f}")  # fmt: skip
    print()
    for c in checks:
        sign = ">=" if c["statistic"] == "requests_per_s" else "<="
        print(f"{'MET ' if c['met'] else 'MISS'} {c['operation']} {c['statistic']} {c['value']} "
              f"(target {sign} {c['target']})")  # fmt: skip


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_path = OUT_DIR / f"{args.label}-{stamp}-server.log"
    async with fresh_schema(args.database_url) as (schema, pg_version), running_server(args, schema, log_path) as srv:
        print(f"server {srv.url}, schema {schema}; storing the pathway and {args.patients} patients", flush=True)
        plan_id = await store_content(srv.url, args.patients)
        await check_apply(srv.url, plan_id, args.patients)
        load_before = os.getloadavg()[0]
        timings = await measure(srv, args, plan_id)
    # Other processes on the machine (test runs, builds) inflate the figures: the 1-minute load says how much.
    load = {"before_measuring": load_before, "after_measuring": os.getloadavg()[0]}
    results = {t.name: summarise(t) for t in timings}
    checks = verdicts(results, TARGETS)
    print_table(results, checks)
    print(f"1-minute load average: {load['before_measuring']:.2f} before, {load['after_measuring']:.2f} after")
    report = {"label": args.label, "started": stamp, "machine": machine(pg_version),
              "config": {k: str(v) for k, v in vars(args).items() if k != "database_url"},
              "load_average_1min": load, "results": results, "targets": checks}  # fmt: skip
    write_report(report, f"{args.label}-{stamp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

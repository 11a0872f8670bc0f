"""`kill -9` of a real `carepath serve` process during writes, on PostgreSQL (issue 8): no Bundle is ever partly
stored, no acknowledged write is lost, and a persisted `$apply` retried with its Idempotency-Key after a kill gives
exactly one CarePlan per key. Each server is a subprocess on its own free port and the test's own schema.
Bounded: a few kills, well under a minute in all.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.live_server import free_port

from carepath.content.samples import SCENARIOS

POSTGRES_URL = os.environ.get("CAREPATH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"
TAG = "http://crash.example.org/bundle"
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
_PLAN = json.loads((PATHWAYS / "plandefinition-chemo-failure-follow-up.json").read_text())
PLAN_ID = f"{_PLAN['id']}-{_PLAN['version']}"  # the id the loader gives the shipped version
pytestmark = pytest.mark.postgres


class Server:
    """`carepath serve` as a subprocess, killed with SIGKILL and started again on the same port and schema."""

    def __init__(self, schema: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CAREPATH_DATABASE_URL": POSTGRES_URL, "CAREPATH_DATABASE_SCHEMA": schema,
                    "CAREPATH_PATHWAYS_DIR": str(PATHWAYS), "CAREPATH_LOG_LEVEL": "WARNING",
                    # no event-triggered enrolment: every CarePlan here must come from a keyed $apply call
                    "CAREPATH_EVENTS_EMBEDDED": "false"}  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "carepath.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "carepath serve exited during start-up"
            try:
                if httpx.get(f"{self.url}/fhir/metadata", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("carepath serve did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def server(postgres_schema: str) -> Iterator[Server]:
    served = Server(postgres_schema)
    served.start()
    try:
        yield served
    finally:
        served.stop()


def _bundle(n: int) -> dict[str, Any]:
    patients = [{"resourceType": "Patient", "identifier": [{"system": TAG, "value": str(n)}],
                 "name": [{"family": f"Crash{n}-{k}"}]} for k in range(3)]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": p} for p in patients]}  # fmt: skip


def _stored_patients(client: httpx.Client, n: int) -> int:
    found = client.get("/fhir/Patient", params={"identifier": f"{TAG}|{n}", "_summary": "count"}).json()
    return int(found["total"])


def _stream(url: str, start: int, sent: list[int], acknowledged: list[int], stop: threading.Event) -> None:
    """Send Bundles one after another until the server dies (or `stop`)."""
    n = start
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            sent.append(n)
            try:
                answer = client.post("/fhir", json=_bundle(n), headers=HEADERS)
            except httpx.TransportError:
                return
            if answer.status_code == 200:
                acknowledged.append(n)
            n += 1


def test_kill_9_during_streamed_transactions_loses_nothing_acknowledged_and_stores_nothing_partial(
    server: Server,
) -> None:
    rng = random.Random(8)
    sent: list[int] = []
    acknowledged: list[int] = []
    for _ in range(3):
        stop = threading.Event()
        sender = threading.Thread(target=_stream, args=(server.url, max(sent, default=0) + 1, sent, acknowledged, stop))
        sender.start()
        time.sleep(rng.uniform(0.5, 1.5))
        server.kill()
        stop.set()
        sender.join(timeout=15)
        server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        counts = {n: _stored_patients(client, n) for n in sent}
    assert len(acknowledged) > 3, "too few Bundles were acknowledged to say anything"
    assert {n: c for n, c in counts.items() if c not in (0, 3)} == {}  # never a partly stored Bundle
    assert [n for n in acknowledged if counts[n] != 3] == []  # never a lost acknowledged one


def test_persisted_apply_retried_after_kill_9_gives_one_careplan_per_key(server: Server) -> None:
    case = SCENARIOS[0]
    record = case.upsert(datetime.now(UTC))
    patient_id = next(e["resource"]["id"] for e in record["entry"] if e["resource"]["resourceType"] == "Patient")
    body = {"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": f"Patient/{patient_id}"},
                                                         {"name": "persist", "valueBoolean": True}]}  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/fhir", json=record, headers=HEADERS).status_code == 200
    rng = random.Random(8)
    keys = [f"crash-key-{k}" for k in range(3)]
    careplans: dict[str, str] = {}
    for key in keys:
        # The first call is cut off by a kill at a random moment (before, during or after its commit) ...
        cut = threading.Thread(target=_apply_once, args=(server.url, body, key))
        cut.start()
        time.sleep(rng.uniform(0.0, 0.3))
        server.kill()
        cut.join(timeout=15)
        server.start()
        # ... and the client retries with the same key until it has an answer.
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.post(f"/fhir/PlanDefinition/{PLAN_ID}/$apply", json=body,
                                 headers={**HEADERS, "Idempotency-Key": key})  # fmt: skip
            assert answer.status_code in (200, 201), answer.text
            careplans[key] = answer.json()["id"]
            again = client.post(f"/fhir/PlanDefinition/{PLAN_ID}/$apply", json=body,
                                headers={**HEADERS, "Idempotency-Key": key})  # fmt: skip
            assert again.json()["id"] == careplans[key]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        stored = client.get("/fhir/CarePlan", params={"subject": f"Patient/{patient_id}", "_count": 100}).json()
    ids = sorted(e["resource"]["id"] for e in stored.get("entry", []))
    assert ids == sorted(careplans.values())  # exactly one CarePlan per key, none from a cut-off attempt


def _apply_once(url: str, body: dict[str, Any], key: str) -> None:
    with contextlib.suppress(httpx.TransportError):  # cut off by the kill: the client cannot know what happened
        httpx.post(f"{url}/fhir/PlanDefinition/{PLAN_ID}/$apply", json=body,
                   headers={**HEADERS, "Idempotency-Key": key}, timeout=10)  # fmt: skip

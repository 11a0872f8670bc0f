"""The HTTP door: a write through the FHIR API queues trigger evaluation in its own transaction and answers at
once; the worker duties then enrol exactly as for an inbound event. Also the embedded default of `serve`
(duties in-process on fakeredis) and the health endpoints."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
from events_support import REPO_ROOT, EventEnv, disease_status, patient

from carepath.settings import Settings
from carepath.store import outbox

FHIR = {"Content-Type": "application/fhir+json"}
MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def _post(http: httpx.AsyncClient, body: dict) -> dict:
    response = await http.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_write_through_the_api_enrols_after_commit_without_waiting(
    env: EventEnv, make_client: MakeClient
) -> None:
    async with make_client(env.settings) as http:
        subject = f"Patient/{(await _post(http, patient()))['id']}"
        await _post(http, disease_status(subject))
        assert await env.search("CarePlan", subject=subject) == []  # the answer did not wait for the pathway
        async with env.repository.reader() as tx:
            waiting, _ = await outbox.backlog(tx.conn)
        assert waiting == 2  # Patient and Observation, each queued in its own transaction
        await env.drain()
        [careplan] = await env.search("CarePlan", subject=subject)
        response = await http.get(f"/fhir/Task?based-on=CarePlan/{careplan['id']}&_summary=count")
        assert response.json()["total"] >= 10
        # carepath's own output is no event for the pathways: the Tasks written just now queued nothing
        async with env.repository.reader() as tx:
            assert (await outbox.backlog(tx.conn))[0] == 0


async def test_a_bundle_through_the_api_takes_the_same_door(env: EventEnv, make_client: MakeClient) -> None:
    async with make_client(env.settings) as http:
        subject = f"Patient/{(await _post(http, patient()))['id']}"
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"resource": disease_status(subject), "request": {"method": "POST", "url": "Observation"}}],
        }
        response = await http.post("/fhir", json=bundle, headers=FHIR)
        assert response.status_code == 200
        await env.drain()
    assert len(await env.search("CarePlan", subject=subject)) == 1


async def test_embedded_serve_runs_the_duties_in_process(tmp_path: Path, make_client: MakeClient) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    settings = Settings(database_url=database, pathways_dir=REPO_ROOT / "pathways", events_poll_ms=20)
    assert settings.events_embedded and not settings.redis_url
    async with make_client(settings) as http:
        subject = f"Patient/{(await _post(http, patient()))['id']}"
        await _post(http, disease_status(subject))
        for _ in range(400):
            found = (await http.get(f"/fhir/CarePlan?subject={subject}")).json().get("entry", [])
            if found:
                break
            await asyncio.sleep(0.05)
        assert len(found) == 1
        ready = await http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        status = (await http.get("/health/events")).json()
        assert status["inbound"]["stream"] == "carepath:inbound"
        assert status["dead_letters"]["count"] == 0
        assert (await http.get("/health/live")).json() == {"status": "ok"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ready_says_503_when_redis_is_unreachable(tmp_path: Path, make_client: MakeClient) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", load_pathways_on_start=False,
                        redis_url=f"redis://127.0.0.1:{_closed_port()}/0")  # fmt: skip
    async with make_client(settings) as http:
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["redis"].startswith("unavailable")
        assert (await http.get("/health/live")).status_code == 200

"""`/app/live` on a real server (uvicorn, the embedded relay on the in-process stream): each signed-in session is
sent only the events its scopes let it read — a `patient/` session hears about its own patient only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from tests.integration.auth_support import bearer
from tests.integration.rest_support import HEADERS, create
from tests.integration.signin_support import dev_sign_in
from tests.live_server import serve_in_thread

from carepath.api.app import create_app
from carepath.auth.dev import dev_token
from carepath.settings import Settings


async def _frames(http: httpx.AsyncClient, until_patient: str, frames: list[dict[str, str]], opened: asyncio.Event
                  ) -> None:  # fmt: skip
    """Collect the `change` frames of the live stream until one names `until_patient`."""
    async with http.stream("GET", "/app/live") as response:
        assert response.status_code == 200
        opened.set()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "change":
                frames.append(json.loads(line.removeprefix("data: ")))
                if frames[-1]["patient"] == until_patient:
                    return


async def test_live_events_are_filtered_by_the_sessions_scopes(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite'}", load_pathways_on_start=False,
                        auth="dev", data_dir=tmp_path / "data", events_embedded=True, events_poll_ms=50)  # fmt: skip
    admin = {**HEADERS, **bearer(dev_token(settings.data_dir))}
    with serve_in_thread(create_app(settings)) as base:
        async with (httpx.AsyncClient(base_url=base) as api, httpx.AsyncClient(base_url=base) as everyone,
                    httpx.AsyncClient(base_url=base) as restricted):  # fmt: skip
            nurse = await create(api, {"resourceType": "Practitioner", "name": [{"text": "Claire Idec"}]}, **admin)
            ids = {}
            for name in ("A", "B"):
                patient = await create(api, {"resourceType": "Patient", "name": [{"family": name}]}, **admin)
                task = await create(api, {"resourceType": "Task", "status": "ready", "intent": "order",
                                          "for": {"reference": f"Patient/{patient['id']}"}}, **admin)  # fmt: skip
                ids[name] = (patient["id"], task)
            patient_a, patient_b = ids["A"][0], ids["B"][0]
            assert (await dev_sign_in(everyone, nurse["id"], granted="user/*.rs")).status_code == 303
            assert (await dev_sign_in(restricted, nurse["id"], granted="patient/*.rs", patient=patient_a)
                    ).status_code == 303  # fmt: skip
            seen_all: list[dict[str, str]] = []
            seen_own: list[dict[str, str]] = []
            opened = [asyncio.Event(), asyncio.Event()]
            readers = [asyncio.create_task(_frames(everyone, patient_a, seen_all, opened[0])),
                       asyncio.create_task(_frames(restricted, patient_a, seen_own, opened[1]))]  # fmt: skip
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 10)
            await asyncio.sleep(0.3)  # the streams have read the stream's end
            # patient B's task changes first, then patient A's
            for name in ("B", "A"):
                task = ids[name][1]
                started = {**task, "status": "in-progress"}
                answer = await api.put(f"/fhir/Task/{task['id']}", json=started, headers=admin)
                assert answer.status_code == 200, answer.text
            await asyncio.wait_for(asyncio.gather(*readers), 15)
    assert [f["patient"] for f in seen_all] == [patient_b, patient_a]
    assert [f["patient"] for f in seen_own] == [patient_a]  # B's change never reached the patient/ session
    assert all(f["type"] == "task.status-changed" for f in seen_all)

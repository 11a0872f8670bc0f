"""Delivery test harness: a real HTTP receiver on 127.0.0.1 (a free port), the app for the FHIR side, and the
delivery steps (fan-out, sender) run one at a time with a clock the test moves, so retries are deterministic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from events_support import EventEnv, open_env
from receiver import Received
from tests.conftest import open_client

from carepath import jsonutil
from carepath.delivery.fanout import fanout_once
from carepath.delivery.sender import SubscriptionSender
from carepath.settings import Settings
from carepath.store.probe import SearchProbe
from carepath.store.records import utc_now


@dataclass
class Clock:
    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class DeliveryEnv:
    settings: Settings
    http: httpx.AsyncClient  # the FHIR API
    sender: SubscriptionSender
    probe: SearchProbe
    clock: Clock
    events: EventEnv

    async def fanout(self) -> int:
        total = 0
        while moved := await fanout_once(self.sender.repository, self.probe, self.settings):
            total += moved
        return total

    async def deliver(self) -> int:
        """Fan out, then send until nothing is due now."""
        await self.fanout()
        total = 0
        while sent := await self.sender.send_once():
            total += sent
        return total

    async def subscribe(self, endpoint: str, criteria: str = "Task?", **channel: Any) -> dict[str, Any]:
        body = subscription(endpoint, criteria, **channel)
        response = await self.http.post("/fhir/Subscription", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def read(self, path: str) -> dict[str, Any]:
        response = await self.http.get(f"/fhir/{path}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def task(self, status: str = "requested", patient: str = "Patient/p1") -> dict[str, Any]:
        body = {"resourceType": "Task", "status": status, "intent": "order", "for": {"reference": patient}}
        response = await self.http.post("/fhir/Task", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def set_task(self, task: dict[str, Any], status: str) -> dict[str, Any]:
        body = {k: v for k, v in task.items() if k != "meta"} | {"status": status}
        response = await self.http.put(f"/fhir/Task/{task['id']}", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def status(self, sub_id: str) -> dict[str, Any]:
        params = (await self.read(f"Subscription/{sub_id}/$status"))["parameter"]
        return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in params}


def subscription(endpoint: str, criteria: str = "Task?", **channel: Any) -> dict[str, Any]:
    return {"resourceType": "Subscription", "status": "requested", "reason": "test", "criteria": criteria,
            "channel": {"type": "rest-hook", "endpoint": endpoint, **channel}}  # fmt: skip


@asynccontextmanager
async def delivery_env(settings: Settings, *, pathways: bool = False) -> AsyncIterator[DeliveryEnv]:
    async with (
        open_env(settings, pathways=pathways) as env,
        open_client(settings) as http,
        httpx.AsyncClient() as client,
    ):
        clock = Clock()
        sender = SubscriptionSender(env.repository, settings, client, clock)
        yield DeliveryEnv(settings, http, sender, SearchProbe(), clock, env)


def body_json(received: Received) -> dict[str, Any]:
    return dict(jsonutil.loads(received.body))

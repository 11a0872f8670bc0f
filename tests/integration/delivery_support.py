"""Delivery test harness: a real HTTP receiver on 127.0.0.1 (a free port), the app for the FHIR side, and the
delivery steps (fan-out, sender) run one at a time with a clock the test moves, so retries are deterministic."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from events_support import EventEnv, open_env

from carepath import jsonutil
from carepath.delivery.fanout import fanout_once
from carepath.delivery.sender import SubscriptionSender
from carepath.settings import Settings
from carepath.store.probe import SearchProbe
from carepath.store.records import utc_now
from conftest import open_client


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def number(self) -> int:
        return int(self.headers["x-carepath-event-number"])

    @property
    def kind(self) -> str:
        return self.headers["x-carepath-notification-type"]


class Receiver:
    """Records every request; answers with the queued statuses first (then 200). `hold` blocks answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Received(self.command, self.path, headers, body))
                receiver.arrived.set()
                receiver.hold.wait(timeout=30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[Received]:
        return [r for r in self.requests if r.kind == "event-notification"]


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

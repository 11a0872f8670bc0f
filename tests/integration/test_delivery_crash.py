"""A worker killed (SIGKILL) in the middle of a delivery loses nothing: the notification it was sending is sent
again by the next worker once the lease ran out, under the same notification id, so the receiver de-duplicates it;
every event number arrives. The worker is a real process: `carepath worker` on PostgreSQL + Redis, the delivery
duty alone on the embedded SQLite default (which `carepath serve` runs in-process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from delivery_support import delivery_env
from events_support import ENVIRONMENTS, settings_for
from receiver import Receiver

from carepath.settings import Settings

pytestmark = pytest.mark.asyncio
_DUTY_ONLY = """
import asyncio
from carepath.delivery.duty import delivery_duty
from carepath.settings import Settings
from carepath.store.database import create_engine
from carepath.store.repository import Repository

async def main() -> None:
    s = Settings()
    engine = create_engine(s.effective_database_url, schema=s.database_schema)
    await delivery_duty(Repository(engine), s)(asyncio.Event())

asyncio.run(main())
"""


@pytest.fixture(params=ENVIRONMENTS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, subscription_allowed_hosts="127.0.0.1", delivery_lease_ms=1000,
                        delivery_poll_ms=20)  # fmt: skip


def _environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
    for name, value in settings.model_dump(mode="json", exclude_defaults=True).items():
        env[f"CAREPATH_{name.upper()}"] = json.dumps(value) if isinstance(value, bool) else str(value)
    return env


async def test_a_worker_killed_during_delivery_loses_nothing(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            sid = (await env.subscribe(receiver.url + "/hook"))["id"]
            await env.deliver()  # handshake: active
            for _ in range(5):
                await env.task()
            receiver.arrived.clear()
            receiver.hold.clear()  # the receiver takes the next request and does not answer yet
            command = ([sys.executable, "-m", "carepath.cli", "worker"] if settings.redis_url
                       else [sys.executable, "-c", _DUTY_ONLY])  # fmt: skip
            worker = subprocess.Popen(command, env=_environment(settings), stdout=subprocess.DEVNULL)
            try:
                assert receiver.arrived.wait(timeout=60), "the worker sent nothing"
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
            receiver.hold.set()
            in_flight = receiver.events()[-1]
            assert in_flight.number == 1
            env.clock.advance(2)  # the dead worker's lease (1 s) has run out
            await env.deliver()
            notes = receiver.events()
            assert [n.number for n in notes] == [1, 1, 2, 3, 4, 5]
            ids = {n.number: n.headers["x-carepath-notification-id"] for n in notes}
            assert len(set(ids.values())) == 5
            assert notes[0].headers["x-carepath-notification-id"] == notes[1].headers["x-carepath-notification-id"]
            status = await env.status(sid)
            assert (status["last-delivered-event"], status["events-pending"]) == ("5", 0)

"""The change feed behind delivery: every committed CarePlan/Task version is fed (whatever wrote it), nothing
rolled back is, and a Subscription's criteria are matched against the version that changed, not the current one."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_support import DeliveryEnv, delivery_env, subscription
from events_support import ENVIRONMENTS, cloud_event, disease_status, patient, settings_for
from receiver import Receiver
from sqlalchemy import func, select
from tests.conftest import open_client

from carepath.settings import Settings
from carepath.store.schema import delivery_change

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=ENVIRONMENTS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, subscription_allowed_hosts="127.0.0.1")


async def test_a_rolled_back_write_feeds_nothing(settings: Settings) -> None:
    async with delivery_env(settings) as env:
        repository = env.sender.repository
        with pytest.raises(RuntimeError):
            async with repository.transaction() as tx:
                await tx.create({"resourceType": "Task", "status": "ready", "intent": "order"})
                await tx.flush()
                raise RuntimeError("abandoned")
        async with repository.reader() as tx:
            assert (await tx.conn.execute(select(func.count()).select_from(delivery_change))).scalar_one() == 0


async def test_criteria_are_matched_against_the_version_that_changed(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            await env.subscribe(receiver.url + "/hook", "Task?status=requested")
            await env.deliver()
            task = await env.task("requested")
            await env.set_task(task, "ready")  # changed again before the fan-out runs
            await env.deliver()
            assert [n.headers["x-carepath-focus"] for n in receiver.events()] == [f"Task/{task['id']}/_history/1"]


async def test_a_receiver_gets_every_change_of_an_event_driven_enrolment(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings, pathways=True) as env:
            await env.subscribe(receiver.url + "/tasks", "Task?")
            await env.subscribe(receiver.url + "/plans", "CarePlan?status=active")
            await env.deliver()
            subject = f"Patient/{(await env.events.create(patient()))['id']}"
            await env.events.send(cloud_event(disease_status(subject)))
            await env.events.drain()
            await env.deliver()
            tasks = await env.events.search("Task", subject=subject)
            task_notes = [n for n in receiver.events() if n.path == "/tasks"]
            assert [n.number for n in task_notes] == list(range(1, len(task_notes) + 1))
            focus = [n.headers["x-carepath-focus"] for n in task_notes]
            assert {f.split("/_history/")[0] for f in focus} == {f"Task/{t['id']}" for t in tasks}
            for t in tasks:  # in order per Task, ending at the version stored now
                versions = [int(f.rsplit("/", 1)[1]) for f in focus if f.startswith(f"Task/{t['id']}/")]
                assert versions == sorted(versions) and versions[-1] == int(t["meta"]["versionId"])
            (plan,) = [n for n in receiver.events() if n.path == "/plans"]
            assert plan.number == 1


async def _fed(env: DeliveryEnv) -> int:
    async with env.sender.repository.reader() as tx:
        return int((await tx.conn.execute(select(func.count()).select_from(delivery_change))).scalar_one())


async def test_nothing_is_fed_while_nobody_subscribes_and_another_process_subscription_is_seen_at_once(
    settings: Settings,
) -> None:
    """No Subscription and no hospital push: a Task write leaves no change row (no fan-out work). A Subscription
    created through a second app (its own engine, as another API process) is seen by the very next write of the
    first one: the write statement itself asks, nothing is cached."""
    with Receiver() as receiver:
        async with delivery_env(settings) as env, open_client(settings) as other:
            await env.task("requested")
            assert await _fed(env) == 0
            created = await other.post("/fhir/Subscription", json=subscription(receiver.url + "/hook", "Task?"))
            assert created.status_code == 201, created.text
            await env.deliver()  # handshake: the Subscription is active
            task = await env.task("requested")
            assert await _fed(env) == 1
            await env.deliver()
            assert [n.headers["x-carepath-focus"] for n in receiver.events()] == [f"Task/{task['id']}/_history/1"]
            off = {**created.json(), "status": "off"}
            assert (await other.put(f"/fhir/Subscription/{off['id']}", json=off)).status_code == 200
            await env.set_task(task, "ready")
            assert await _fed(env) == 0  # an `off` Subscription reads nothing


async def test_a_process_that_pushes_to_a_hospital_feeds_every_change(settings: Settings) -> None:
    pushing = settings.model_copy(update={"ehr_base_url": "http://127.0.0.1:9/fhir"})
    async with delivery_env(pushing) as env:
        await env.task("requested")
        assert await _fed(env) == 1

"""FHIR R4 Subscriptions (rest-hook) delivered to a real HTTP receiver on 127.0.0.1, on the embedded default
(SQLite + fakeredis) and on real PostgreSQL + Redis."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from delivery_support import body_json, delivery_env, subscription
from events_support import ENVIRONMENTS, settings_for
from receiver import Receiver

from carepath.settings import Settings
from carepath.store.records import utc_now

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=ENVIRONMENTS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, subscription_allowed_hosts="127.0.0.1", delivery_max_attempts=3,
                        delivery_retry_base_ms=1000, base_url="http://testserver/fhir")  # fmt: skip


async def test_handshake_then_active(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            sub = await env.subscribe(receiver.url + "/hook", header=["X-Api-Key: k-123"])
            assert sub["status"] == "requested"
            await env.deliver()
            (hand,) = receiver.requests
            assert (hand.method, hand.path, hand.kind, hand.body) == ("POST", "/hook", "handshake", b"")
            assert hand.headers["x-api-key"] == "k-123"
            assert hand.headers["x-carepath-subscription"] == f"Subscription/{sub['id']}"
            assert (await env.read(f"Subscription/{sub['id']}"))["status"] == "active"


async def test_no_payload_post_for_a_matching_change(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            await env.subscribe(receiver.url + "/hook", "Task?status=ready")
            await env.deliver()
            task = await env.task("requested")  # does not match
            await env.set_task(task, "ready")  # matches
            await env.deliver()
            (note,) = receiver.events()
            assert (note.method, note.path, note.body, note.number) == ("POST", "/hook", b"", 1)
            assert note.headers["x-carepath-focus"] == f"Task/{task['id']}/_history/2"


async def test_full_resource_put_to_a_fhir_base(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            await env.subscribe(receiver.url + "/fhir", "Task?", payload="application/fhir+json")
            await env.deliver()
            task = await env.task()
            await env.deliver()
            hand, note = receiver.requests
            assert (hand.method, hand.path) == ("GET", "/fhir/metadata")
            assert (note.method, note.path) == ("PUT", f"/fhir/Task/{task['id']}")
            assert note.headers["content-type"] == "application/fhir+json"
            assert body_json(note) == task


async def test_header_values_are_sent_and_never_returned(settings: Settings) -> None:
    secret = "Bearer s3cret-value"
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            sub = await env.subscribe(receiver.url + "/hook", header=[f"Authorization: {secret}"])
            sid = sub["id"]
            assert sub["channel"]["header"] == ["Authorization: ***"]
            await env.deliver()
            # The client updates what it read (masked value): the stored value is kept and still sent.
            read = await env.read(f"Subscription/{sid}")
            read["reason"] = "changed"
            assert (await env.http.put(f"/fhir/Subscription/{sid}", json=read)).status_code == 200
            await env.task()
            await env.deliver()
            assert [r.headers["authorization"] for r in receiver.requests] == [secret, secret]
            for path in (f"Subscription/{sid}", f"Subscription/{sid}/_history/1", f"Subscription/{sid}/_history",
                         "Subscription?status=active", "Subscription/_history", "_history"):  # fmt: skip
                response = await env.http.get(f"/fhir/{path}")
                assert response.status_code == 200, path
                assert "s3cret" not in response.text, path


async def test_a_masked_header_without_a_stored_value_is_refused(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            body = subscription(receiver.url, header=["Authorization: ***"])
            response = await env.http.post("/fhir/Subscription", json=body)
            assert response.status_code == 400
            assert response.json()["resourceType"] == "OperationOutcome"


async def test_failed_notifications_are_retried_with_backoff(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            # 10 s, then 20 s: margins of seconds, so a slow machine's real time cannot make a retry due early.
            env.sender.settings = settings.model_copy(update={"delivery_retry_base_ms": 10000})
            await env.subscribe(receiver.url + "/hook")
            await env.deliver()
            receiver.statuses = [500, 503]
            await env.task()
            await env.deliver()  # attempt 1 fails: next in 10 s
            assert len(receiver.events()) == 1
            env.clock.advance(5)
            await env.deliver()  # not due yet
            assert len(receiver.events()) == 1
            env.clock.advance(6)
            await env.deliver()  # attempt 2 fails: next in 20 s
            assert len(receiver.events()) == 2
            env.clock.advance(10)
            await env.deliver()
            assert len(receiver.events()) == 2
            env.clock.advance(11)
            await env.deliver()  # attempt 3 succeeds
            notes = receiver.events()
            assert [n.number for n in notes] == [1, 1, 1]
            assert len({n.headers["x-carepath-notification-id"] for n in notes}) == 1


async def test_error_after_repeated_failure_then_reactivation_sends_what_was_missed(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            sub = await env.subscribe(receiver.url + "/hook")
            sid = sub["id"]
            await env.deliver()
            receiver.statuses = [500] * 3  # delivery_max_attempts = 3
            await env.task()
            for _ in range(3):
                await env.deliver()
                env.clock.advance(10)
            stored = await env.read(f"Subscription/{sid}")
            assert stored["status"] == "error"
            assert "event 1 not delivered after 3 attempts" in stored["error"] and "500" in stored["error"]
            status = await env.status(sid)
            assert (status["status"], status["events-dead"]) == ("error", 1)
            # Events keep being numbered while in error, nothing is sent.
            await env.task()
            await env.deliver()
            assert len(receiver.events()) == 3
            assert (await env.status(sid))["events-since-subscription-start"] == "2"
            # Re-activation: handshake, then the dead letter and the pending one, in order.
            stored["status"] = "requested"
            assert (await env.http.put(f"/fhir/Subscription/{sid}", json=stored)).status_code == 200
            await env.deliver()
            assert [r.kind for r in receiver.requests[-3:]] == ["handshake", "event-notification", "event-notification"]
            assert [n.number for n in receiver.events()[-2:]] == [1, 2]
            after = await env.status(sid)
            assert (after["status"], after["events-dead"], after["last-delivered-event"]) == ("active", 0, "2")
            assert "error" not in await env.read(f"Subscription/{sid}")


async def test_event_numbers_have_no_gaps_and_keep_each_tasks_order(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            await env.subscribe(receiver.url + "/hook", "Task?patient=Patient/p1")
            await env.deliver()
            tasks = [await env.task() for _ in range(3)]
            await env.task(patient="Patient/other")  # does not match
            for task in tasks:
                await env.set_task(await env.read(f"Task/{task['id']}"), "ready")
            await env.deliver()
            notes = receiver.events()
            assert [n.number for n in notes] == list(range(1, 7))
            for task in tasks:
                focus = [n.headers["x-carepath-focus"] for n in notes]
                versions = [f for f in focus if f.startswith(f"Task/{task['id']}/")]
                assert versions == [f"Task/{task['id']}/_history/1", f"Task/{task['id']}/_history/2"]


async def test_status_reports_the_last_event_number_and_resend_sends_missed_ones_again(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            sid = (await env.subscribe(receiver.url + "/hook"))["id"]
            await env.deliver()
            for _ in range(3):
                await env.task()
            await env.deliver()
            status = await env.status(sid)
            assert status["subscription"] == {"reference": f"Subscription/{sid}"}
            assert (status["status"], status["events-since-subscription-start"], status["last-delivered-event"],
                    status["events-pending"]) == ("active", "3", "3", 0)  # fmt: skip
            first = {n.number: n.headers["x-carepath-notification-id"] for n in receiver.events()}
            # The receiver saw 1 and noticed a gap: it asks for everything after 1.
            params = {"resourceType": "Parameters", "parameter": [{"name": "eventsSinceNumber", "valueString": "1"}]}
            response = await env.http.post(f"/fhir/Subscription/{sid}/$resend", json=params)
            assert response.status_code == 200, response.text
            assert response.json()["parameter"][0]["valueInteger"] == 2
            await env.deliver()
            again = receiver.events()[3:]
            assert [n.number for n in again] == [2, 3]
            assert all(n.headers["x-carepath-notification-id"] == first[n.number] for n in again)


async def test_hosts_off_the_allow_list_are_never_contacted(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            # localhost is loopback (http allowed) but not on the list: stored, then refused by the worker.
            sub = await env.subscribe(receiver.url.replace("127.0.0.1", "localhost") + "/hook")
            await env.deliver()
            stored = await env.read(f"Subscription/{sub['id']}")
            assert stored["status"] == "error"
            assert "not on CAREPATH_SUBSCRIPTION_ALLOWED_HOSTS" in stored["error"]
            assert receiver.requests == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"channel": {"type": "rest-hook", "endpoint": "http://example.org/hook"}}, 422),  # http to a remote host
        ({"channel": {"type": "websocket", "endpoint": "https://example.org/hook"}}, 422),
        ({"channel": {"type": "rest-hook", "endpoint": "https://example.org", "payload": "text/xml"}}, 422),
        ({"criteria": "Patient?name=x"}, 422),
        ({"criteria": "Task?no-such-parameter=1"}, 400),
        ({"channel": {"type": "rest-hook", "endpoint": "https://example.org", "header": ["no colon"]}}, 400),
    ],
)
async def test_invalid_subscriptions_are_refused(settings: Settings, change: dict[str, object], status: int) -> None:
    async with delivery_env(settings) as env:
        response = await env.http.post("/fhir/Subscription", json=subscription("https://example.org") | change)
        assert response.status_code == status, response.text
        assert (await env.http.get("/fhir/Subscription")).json().get("total", 0) == 0


async def test_end_turns_the_subscription_off(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            body = subscription(receiver.url + "/hook") | {"end": "2030-01-01T00:00:00Z"}
            sid = (await env.http.post("/fhir/Subscription", json=body)).json()["id"]
            await env.deliver()
            assert (await env.read(f"Subscription/{sid}"))["status"] == "active"
            env.clock.offset = datetime(2030, 1, 1, 0, 0, 1) - utc_now()
            await env.task()
            await env.deliver()
            assert (await env.read(f"Subscription/{sid}"))["status"] == "off"
            assert receiver.events() == []


async def test_status_and_resend_answer_operation_outcomes_for_bad_requests(settings: Settings) -> None:
    with Receiver() as receiver:
        async with delivery_env(settings) as env:
            missing = await env.http.get("/fhir/Subscription/nope/$status")
            assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
            sid = (await env.subscribe(receiver.url + "/hook"))["id"]
            bad = {"resourceType": "Parameters", "parameter": [{"name": "eventsSinceNumber", "valueString": "-1"}]}
            response = await env.http.post(f"/fhir/Subscription/{sid}/$resend", json=bad)
            assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
            assert (await env.http.delete(f"/fhir/Subscription/{sid}")).status_code == 200
            assert (await env.http.get(f"/fhir/Subscription/{sid}/$status")).status_code == 410

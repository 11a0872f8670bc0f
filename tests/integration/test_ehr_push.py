"""The push of generated CarePlans and Tasks to the hospital's FHIR server, with `respx` standing in for that server
and its token endpoint (SMART Backend Services); our own database is real (SQLite, and PostgreSQL + Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from delivery_support import Clock
from events_support import ENVIRONMENTS, open_env, settings_for

from carepath import jsonutil
from carepath.delivery.ehr import EhrPusher
from carepath.delivery.fanout import fanout_once
from carepath.settings import Settings
from carepath.store import delivery
from carepath.store.probe import SearchProbe
from carepath.store.repository import Repository

pytestmark = pytest.mark.asyncio
BASE, TOKEN_URL = "https://ehr.hospital.test/fhir", "https://ehr.hospital.test/oauth/token"
TASK_SYSTEM = "https://fhir.carepath.dev/identifier/Task"
CAREPLAN_SYSTEM = "https://fhir.carepath.dev/identifier/CarePlan"


def _write_key(path: Path, kind: str) -> Any:
    key: Any = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    return key.public_key()


@pytest.fixture(params=ENVIRONMENTS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(request, tmp_path, ehr_base_url=BASE, ehr_token_url=TOKEN_URL, ehr_client_id="carepath-test",
                        ehr_private_key_file=str(tmp_path / "key.pem"), ehr_key_id="k1", delivery_max_attempts=3,
                        delivery_retry_base_ms=10000)  # fmt: skip


@dataclass
class PushEnv:
    repository: Repository
    settings: Settings
    pusher: EhrPusher
    clock: Clock
    public_key: Any

    async def plan(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A CarePlan and a Task based on it, written in one transaction (as `$apply` does), then fanned out."""
        async with self.repository.transaction() as tx:
            careplan = (await tx.create({"resourceType": "CarePlan", "status": "active", "intent": "plan",
                                         "subject": {"reference": "Patient/p1"}})).json()  # fmt: skip
            task = (await tx.create({"resourceType": "Task", "status": "requested", "intent": "order",
                                     "for": {"reference": "Patient/p1"},
                                     "basedOn": [{"reference": f"CarePlan/{careplan['id']}"}]})).json()  # fmt: skip
        await fanout_once(self.repository, SearchProbe(), self.settings)
        return careplan, task

    async def pushes(self) -> list[delivery.Push]:
        async with self.repository.reader() as tx:
            return await delivery.pushes(tx.conn)


@pytest.fixture
async def env(settings: Settings, tmp_path: Path) -> AsyncIterator[PushEnv]:
    public_key = _write_key(tmp_path / "key.pem", "rsa")
    async with open_env(settings, pathways=False) as events, httpx.AsyncClient() as client:
        clock = Clock()
        yield PushEnv(events.repository, settings, EhrPusher(events.repository, settings, client, clock), clock,
                      public_key)  # fmt: skip


def _token_route(router: respx.MockRouter, expires_in: int = 300) -> respx.Route:
    return router.post(TOKEN_URL).mock(
        return_value=httpx.Response(200, json={"access_token": "tok", "token_type": "bearer", "expires_in": expires_in})
    )


async def test_a_plan_is_pushed_as_a_transaction_of_conditional_updates(env: PushEnv) -> None:
    careplan, task = await env.plan()
    with respx.mock(assert_all_called=True) as router:
        token = _token_route(router)
        fhir = router.post(BASE).mock(return_value=httpx.Response(200, json={"resourceType": "Bundle"}))
        assert await env.pusher.push_once() == 1
    form = parse_qs(token.calls.last.request.content.decode())
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    header = jwt.get_unverified_header(form["client_assertion"][0])
    assert (header["alg"], header["kid"]) == ("RS384", "k1")
    claims = jwt.decode(form["client_assertion"][0], env.public_key, algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "carepath-test" and claims["jti"]
    request = fhir.calls.last.request
    assert request.headers["authorization"] == "Bearer tok"
    bundle = jsonutil.loads(request.content)
    assert bundle["type"] == "transaction"
    by_type = {e["resource"]["resourceType"]: e for e in bundle["entry"]}
    assert by_type["Task"]["request"] == {"method": "PUT", "url": f"Task?identifier={TASK_SYSTEM}|{task['id']}"}
    assert by_type["CarePlan"]["request"]["url"] == f"CarePlan?identifier={CAREPLAN_SYSTEM}|{careplan['id']}"
    sent_task = by_type["Task"]["resource"]
    assert "id" not in sent_task and "versionId" not in sent_task.get("meta", {})
    assert {"system": TASK_SYSTEM, "value": task["id"]} in sent_task["identifier"]
    assert sent_task["basedOn"] == [{"reference": f"CarePlan?identifier={CAREPLAN_SYSTEM}|{careplan['id']}"}]
    assert await env.pushes() == []


async def test_server_errors_are_retried_with_backoff(env: PushEnv) -> None:
    await env.plan()
    with respx.mock() as router:
        _token_route(router)
        fhir = router.post(BASE).mock(side_effect=[httpx.Response(503), httpx.Response(200, json={})])
        await env.pusher.push_once()
        (waiting,) = await env.pushes()
        assert (waiting.status, waiting.attempts) == ("pending", 1) and "503" in (waiting.last_error or "")
        assert await env.pusher.push_once() == 0  # not due before the backoff delay (10 s)
        env.clock.advance(11)
        assert await env.pusher.push_once() == 1
        assert fhir.call_count == 2
    assert await env.pushes() == []


async def test_a_timeout_is_retried_then_dead_lettered(env: PushEnv) -> None:
    await env.plan()
    with respx.mock() as router:
        _token_route(router)
        fhir = router.post(BASE).mock(side_effect=httpx.ReadTimeout("slow"))
        for _ in range(3):  # delivery_max_attempts
            await env.pusher.push_once()
            env.clock.advance(60)
        assert fhir.call_count == 3
    (dead,) = await env.pushes()
    assert (dead.status, dead.attempts) == ("dead", 3) and "no answer in time" in (dead.last_error or "")


async def test_a_refused_request_is_dead_lettered_at_once(env: PushEnv) -> None:
    await env.plan()
    with respx.mock() as router:
        _token_route(router)
        router.post(BASE).mock(return_value=httpx.Response(400, json={"resourceType": "OperationOutcome"}))
        await env.pusher.push_once()
    (dead,) = await env.pushes()
    assert (dead.status, dead.attempts) == ("dead", 1) and "400" in (dead.last_error or "")


@pytest.mark.parametrize("conflict", [409, 412])
async def test_a_conflict_is_retried_once_after_re_reading_then_dead_lettered(env: PushEnv, conflict: int) -> None:
    _, task = await env.plan()
    with respx.mock() as router:
        _token_route(router)
        fhir = router.post(BASE).mock(return_value=httpx.Response(conflict, json={"resourceType": "OperationOutcome"}))
        await env.pusher.push_once()
        # Changed meanwhile: the retry (due at once) sends the re-read, current version.
        async with env.repository.transaction() as tx:
            await tx.update("Task", task["id"], {**task, "status": "ready"})
        await env.pusher.push_once()
        assert fhir.call_count == 2
        second = jsonutil.loads(fhir.calls.last.request.content)
        assert {e["resource"]["resourceType"]: e["resource"] for e in second["entry"]}["Task"]["status"] == "ready"
    (dead,) = await env.pushes()
    assert dead.status == "dead" and str(conflict) in (dead.last_error or "")


async def test_a_conflict_then_success_is_done(env: PushEnv) -> None:
    await env.plan()
    with respx.mock() as router:
        _token_route(router)
        router.post(BASE).mock(side_effect=[httpx.Response(412), httpx.Response(200, json={})])
        await env.pusher.push_once()
        await env.pusher.push_once()
    assert await env.pushes() == []


async def test_the_token_is_cached_until_shortly_before_expiry_and_renewed_after_a_401(env: PushEnv) -> None:
    with respx.mock() as router:
        token = _token_route(router, expires_in=120)
        fhir = router.post(BASE).mock(return_value=httpx.Response(200, json={}))
        for _ in range(2):
            await env.plan()
            await env.pusher.push_once()
        assert token.call_count == 1  # cached
        env.clock.advance(61)  # within a minute of expiry: renewed before use
        await env.plan()
        await env.pusher.push_once()
        assert token.call_count == 2
        fhir.side_effect = [httpx.Response(401), httpx.Response(200, json={})]
        await env.plan()
        await env.pusher.push_once()  # revoked early: one new token, the same push again
        assert token.call_count == 3
    assert await env.pushes() == []


async def test_an_ec_key_signs_es384(env: PushEnv, tmp_path: Path) -> None:
    public_key = _write_key(tmp_path / "key.pem", "ec")  # replaces the RSA key before the first token is made
    await env.plan()
    with respx.mock() as router:
        token = _token_route(router)
        router.post(BASE).mock(return_value=httpx.Response(200, json={}))
        await env.pusher.push_once()
    assertion = parse_qs(token.calls.last.request.content.decode())["client_assertion"][0]
    assert jwt.decode(assertion, public_key, algorithms=["ES384"], audience=TOKEN_URL)["iss"] == "carepath-test"

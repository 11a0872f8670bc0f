"""When something fails inside the server: honest answers, a request id to quote, no leaked patient data, and a
connection that stays usable (issue 8).

Failures are injected the way they happen in production, below our code: a database trigger refuses the search
index row of a marked Patient (as a full disk or a DBA's constraint would), and a route added to the app raises.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import text
from tests.live_server import serve_in_thread

from carepath.api.app import create_app
from carepath.settings import Settings
from carepath.store.database import create_engine, is_sqlite

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
MARK = "Refuse-me Secretname"  # the trigger refuses this name; the log must never show it
_PG_TRIGGER = [
    """CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF NEW.value LIKE '%refuse-me%' THEN RAISE EXCEPTION 'injected storage failure'; END IF;
       RETURN NEW; END $$""",
    "CREATE TRIGGER refuse_marked BEFORE INSERT ON sp_string FOR EACH ROW EXECUTE FUNCTION refuse_marked()",
]
_SQLITE_TRIGGER = [
    """CREATE TRIGGER refuse_marked BEFORE INSERT ON sp_string WHEN NEW.value LIKE '%refuse-me%'
       BEGIN SELECT RAISE(ABORT, 'injected storage failure'); END""",
]


@asynccontextmanager
async def failing_store(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app (migrated by its lifespan) over a database that refuses to index the name MARK."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = create_engine(settings.effective_database_url, schema=settings.database_schema)
        async with engine.begin() as conn:
            for sql in _SQLITE_TRIGGER if is_sqlite(settings.effective_database_url) else _PG_TRIGGER:
                await conn.execute(text(sql))
        await engine.dispose()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def _patient(family: str) -> dict[str, object]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def _entry(family: str) -> dict[str, object]:
    return {"request": {"method": "POST", "url": "Patient"}, "resource": _patient(family)}


async def test_a_batch_entry_hitting_an_internal_error_does_not_misstate_the_others(settings: Settings) -> None:
    async with failing_store(settings) as client:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": [_entry("Before"), _entry(MARK), _entry("After")]}
        answer = await client.post("/fhir", json=bundle, headers=HEADERS)
        assert answer.status_code == 200, answer.text  # was 500 "the request was not applied"
        entries = answer.json()["entry"]
        assert [e["response"]["status"] for e in entries] == ["201 Created", "500", "201 Created"]
        assert entries[1]["response"]["outcome"]["issue"][0]["code"] == "exception"
        stored = (await client.get("/fhir/Patient", params={"_elements": "name"})).json()
        assert sorted(e["resource"]["name"][0]["family"] for e in stored["entry"]) == ["After", "Before"]


async def test_a_500_carries_the_request_id_and_logs_the_statement_without_values(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with failing_store(settings) as client:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry("Kept out"), _entry(MARK)]}
        with caplog.at_level(logging.ERROR):
            answer = await client.post("/fhir", json=bundle, headers=HEADERS)
        assert answer.status_code == 500
        request_id = answer.headers["X-Request-Id"]
        assert request_id in answer.json()["issue"][0]["diagnostics"]
        assert (await client.get("/fhir/Patient", params={"_summary": "count"})).json()["total"] == 0  # atomic
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records) + caplog.text
    assert "UNEXPECTED ERROR" in logged and request_id in logged
    assert "INSERT INTO sp_string" in logged  # the statement is there, to debug with ...
    assert "secretname" not in logged.lower()  # ... but not the patient's name among its values


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    ok, missing = await client.get("/fhir/metadata"), await client.get("/fhir/Patient/nobody")
    assert ok.headers["X-Request-Id"] != missing.headers["X-Request-Id"]
    assert missing.status_code == 404 and len(missing.headers["X-Request-Id"]) >= 16
    proxied = await client.get("/fhir/metadata", headers={"X-Request-Id": "lb-7f3a.42"})
    assert proxied.headers["X-Request-Id"] == "lb-7f3a.42"  # a proxy's id is kept, so logs line up
    for forged in (b"a" * 129, b"two words", b"x\xe9", b"<script>"):
        replaced = await client.get("/fhir/metadata", headers={"X-Request-Id": forged})
        assert replaced.headers["X-Request-Id"].encode() != forged


# --- keep-alive after a 500, against a real uvicorn server ---------------------------------------------------------
@pytest.fixture
def failing_route_server(settings: Settings) -> Iterator[int]:
    """uvicorn (in a thread, its own loop) serving the app plus one route that always raises."""
    app = create_app(settings)

    async def broken() -> None:
        raise RuntimeError("injected defect")

    app.add_api_route("/injected-failure", broken, methods=["GET"])
    with serve_in_thread(app) as url:
        yield int(url.rsplit(":", 1)[1])


def test_the_connection_survives_a_500(failing_route_server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", failing_route_server, timeout=10)
    try:
        connection.request("GET", "/injected-failure")
        failed = connection.getresponse()
        body = failed.read()
        assert failed.status == 500 and b"OperationOutcome" in body
        assert failed.getheader("Connection") != "close"
        first_socket = connection.sock
        connection.request("GET", "/fhir/metadata")  # the next, unrelated request on the same connection
        after = connection.getresponse()
        after.read()
        assert after.status == 200
        assert connection.sock is first_socket  # not silently reconnected
    finally:
        connection.close()

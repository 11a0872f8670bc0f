"""Interoperability: an ecosystem client (fhirpy's AsyncFHIRClient) against a real uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from carepath.api.app import create_app
from carepath.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_url(settings: Settings) -> Iterator[str]:
    """uvicorn serving the app in a thread (its own event loop, as in production); stopped afterwards."""
    port = _free_port()
    app = create_app(settings.model_copy(update={"base_url": ""}))  # links built from the real request
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()


async def test_fhirpy_creates_searches_updates_and_deletes(server_url: str) -> None:
    # fhirpy's count() adds `_totalMethod=count` (an Aidbox extension): ignored by default, as R4 says it SHOULD be.
    client = AsyncFHIRClient(server_url, extra_headers={"Accept": "application/fhir+json"})
    patient = client.resource("Patient", name=[{"family": "Interop", "given": ["Fhirpy"]}], birthDate="1961-04-12")
    await patient.save()
    assert patient["id"] and patient["meta"]["versionId"] == "1"

    found = await client.resources("Patient").search(name="interop", birthdate="1961").fetch_all()
    assert [p["id"] for p in found] == [patient["id"]]

    patient["active"] = True
    await patient.save()
    assert patient["meta"]["versionId"] == "2"
    fetched = await client.reference("Patient", patient["id"]).to_resource()
    assert fetched["active"] is True

    await patient.delete()
    assert await client.resources("Patient").search(name="interop").count() == 0
    with pytest.raises(ResourceNotFound):
        await client.reference("Patient", patient["id"]).to_resource()

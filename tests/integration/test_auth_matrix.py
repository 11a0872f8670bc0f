"""The auth matrix (issue 13): every route of the app, generated from its route table, against every kind of
bad token, insufficient and sufficient scopes, v1 and v2 syntax, and patient/ tokens outside the compartment.

A route added later is in the matrix automatically; it must then be open (listed in OPEN) or refuse requests
without the right token — `classify` denies by default what it does not recognise. The worklist's routes (not in
the OpenAPI document) are taken from the app's route table: without a session they send to the sign-in (401 for
a form post or the event stream), with a session lacking scope 403, with the right one 200.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from tests.integration.auth_support import (
    AUDIENCE,
    ISSUER,
    MakeClient,
    SigningKey,
    bearer,
    ec_key,
    hs256_forgery,
    jwt_settings,
    rsa_key,
    token,
    unsigned,
)
from tests.integration.signin_support import CLIENT_ID, FakeIssuer, csrf_of

from carepath.api.app import create_app
from carepath.settings import Settings

# Open by design: health, the CapabilityStatement, SMART discovery (and $versions, once the server half adds it).
OPEN = {"/healthz", "/fhir/metadata", "/fhir/.well-known/smart-configuration", "/fhir/$versions"}
PATH_VALUES = {
    "res_type": "Observation",
    "res_id": "obs1",
    "version": "1",
    "plan_id": "pd1",
    "activity_id": "ad1",
    "sub_id": "sub1",
}

OBSERVATION = {"resourceType": "Observation", "id": "obs1", "status": "final", "code": {"text": "weight"},
               "subject": {"reference": "Patient/p1"}}  # fmt: skip
PATIENT = {"resourceType": "Patient", "id": "p1", "active": True}
PLAN = {"resourceType": "PlanDefinition", "id": "pd1", "url": "http://example.test/PlanDefinition/pd1",
        "status": "active", "action": [{"title": "weigh"}]}  # fmt: skip
ACTIVITY = {"resourceType": "ActivityDefinition", "id": "ad1", "url": "http://example.test/ActivityDefinition/ad1",
            "status": "active", "kind": "ServiceRequest"}  # fmt: skip
FHIR = "application/fhir+json"


def observation_of(patient: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "w"},
            "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the route's path template
    url: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def routes() -> list[Call]:
    """Every operation of the app's OpenAPI document, plus the health check (not in the document)."""
    app = create_app(Settings(load_pathways_on_start=False))  # the route table does not depend on the settings
    calls = [Call("GET", "/healthz", "/healthz")]
    for path, operations in app.openapi()["paths"].items():
        calls += [Call(method.upper(), path, path.format(**PATH_VALUES)) for method in sorted(operations)]
    return calls


ROUTES = routes()
SECURED = [c for c in ROUTES if c.path not in OPEN]


def request_body(call: Call) -> tuple[bytes | None, dict[str, str]]:
    if call.method not in ("POST", "PUT", "PATCH"):
        return None, {}
    if call.path.endswith("$apply"):
        body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
            {"name": "subject", "valueString": "Patient/p1"}]}  # fmt: skip
        if call.path == "/fhir/PlanDefinition/$apply":
            body["parameter"].append({"name": "url", "valueUri": PLAN["url"]})
    elif call.path.endswith("_search"):
        return b"status=final", {"Content-Type": "application/x-www-form-urlencoded"}
    elif call.path == "/fhir":
        new = {k: v for k, v in OBSERVATION.items() if k != "id"}
        entry = {"request": {"method": "POST", "url": "Observation"}, "resource": new}
        body = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    elif call.method == "PATCH":
        return (json.dumps([{"op": "replace", "path": "/status", "value": "amended"}]).encode(),
                {"Content-Type": "application/json-patch+json"})  # fmt: skip
    else:
        body = dict(OBSERVATION) if call.method == "PUT" else {k: v for k, v in OBSERVATION.items() if k != "id"}
    return json.dumps(body).encode(), {"Content-Type": FHIR}


async def send(client: httpx.AsyncClient, call: Call, headers: dict[str, str]) -> httpx.Response:
    content, extra = request_body(call)
    return await client.request(call.method, call.url, content=content, headers={**headers, **extra})


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {"rsa": rsa_key("rsa-1", "RS384"), "ec": ec_key("ec-1", "ES256"), "stranger": rsa_key("rsa-1", "RS384")}


@pytest.fixture
async def client(
    tmp_path: Path, keys: dict[str, SigningKey], make_client: MakeClient
) -> AsyncIterator[httpx.AsyncClient]:
    # Audit and the failed-authentication limit have their own tests; here they would only slow the matrix.
    settings = jwt_settings(tmp_path, keys["rsa"], keys["ec"], audit=False, auth_failure_limit=1_000_000)
    async with make_client(settings) as http:
        admin = bearer(token(keys["rsa"]))
        for resource in (PATIENT, OBSERVATION, PLAN, ACTIVITY):
            url = f"/fhir/{resource['resourceType']}/{resource['id']}"
            answer = await http.put(url, json=resource, headers={**admin, "Content-Type": FHIR})
            assert answer.status_code in (200, 201), answer.text
        yield http


def test_the_matrix_covers_the_route_table() -> None:
    paths = {c.path for c in ROUTES}
    assert {"/fhir/{res_type}/{res_id}", "/fhir/{res_type}", "/fhir", "/fhir/PlanDefinition/{plan_id}/$apply"} <= paths
    assert len(SECURED) >= 15


def bad_tokens(keys: dict[str, SigningKey]) -> dict[str, str]:
    rsa = keys["rsa"]
    pem = rsa.public_pem
    jwk_text = json.dumps(rsa.public_jwk).encode()
    return {
        "expired": token(rsa, exp=1_000_000, iat=999_000),
        "not yet valid": token(rsa, nbf=4_000_000_000),
        "wrong issuer": token(rsa, iss="https://evil.example.test"),
        "wrong audience": token(rsa, aud="https://other.example.test/fhir"),
        "no audience": token(rsa, aud=None),
        "bad signature": token(keys["stranger"], kid="rsa-1"),
        "unknown kid": token(rsa, kid="rsa-404"),
        "alg none": unsigned(),
        "HS256 with the PEM": hs256_forgery(pem, "rsa-1"),
        "HS256 with the PEM, no newline": hs256_forgery(pem.strip(), "rsa-1"),
        "HS256 with the JWK": hs256_forgery(jwk_text, "rsa-1"),
        "HS256 with the DER": hs256_forgery(rsa.public_der, "rsa-1"),
        "HS256 with the modulus": hs256_forgery(rsa.public_jwk["n"].encode(), "rsa-1"),
        "garbage": "not-a-token",
        "truncated": token(rsa)[:-10],
    }


async def test_open_routes_need_no_token(client: httpx.AsyncClient) -> None:
    for call in ROUTES:
        if call.path in OPEN:
            answer = await send(client, call, {})
            assert answer.status_code == 200, str(call)


async def test_no_token_is_401_without_error_code(client: httpx.AsyncClient) -> None:
    for call in SECURED:
        answer = await send(client, call, {})
        assert answer.status_code == 401, str(call)
        assert answer.headers["www-authenticate"] == "Bearer", str(call)
        assert call.method == "HEAD" or answer.json()["resourceType"] == "OperationOutcome"


async def test_every_bad_token_is_401_invalid_token_on_every_route(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    failures = []
    for name, bad in bad_tokens(keys).items():
        for call in SECURED:
            answer = await send(client, call, bearer(bad))
            if answer.status_code != 401 or answer.headers.get("www-authenticate") != 'Bearer error="invalid_token"':
                failures.append(f"{name}: {call} -> {answer.status_code}")
            elif (
                call.method != "HEAD"
                and answer.json()["issue"][0]["diagnostics"] != "The access token is invalid or expired"
            ):
                failures.append(f"{name}: {call} says more than it should")
    assert failures == []


async def test_insufficient_scope_is_403_on_every_route(client: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    # Write-only scopes on other types: any read letter would open the definitions ($data-requirements) by design.
    other_type = token(keys["ec"], "system/Practitioner.cud user/Organization.cud")
    for call in SECURED:
        answer = await send(client, call, bearer(other_type))
        assert answer.status_code == 403, f"{call} -> {answer.status_code}"
        assert answer.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
        assert call.method == "HEAD" or answer.json()["resourceType"] == "OperationOutcome"


async def test_granular_query_scopes_grant_nothing(client: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    granular = token(keys["rsa"], "system/Observation.rs?category=laboratory")
    answer = await client.get("/fhir/Observation", headers=bearer(granular))
    assert answer.status_code == 403


@pytest.mark.parametrize("scope", ["system/*.cruds", "system/*.*", "user/*.cruds"])
async def test_the_right_scope_passes_every_route(
    client: httpx.AsyncClient, keys: dict[str, SigningKey], scope: str
) -> None:
    good = bearer(token(keys["ec"], scope))
    for call in SECURED:
        answer = await send(client, call, good)
        assert answer.status_code not in (401, 403, 429), f"{call} -> {answer.status_code} {answer.text[:200]}"


async def test_v1_and_v2_syntax_mean_the_same(client: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    pairs = [
        ("system/*.read", "system/*.rs"),
        ("system/*.write", "system/*.cud"),
        ("system/Observation.read system/Patient.read", "system/Observation.rs system/Patient.rs"),
    ]
    for v1, v2 in pairs:
        for call in SECURED:
            if call.method in ("PUT", "DELETE", "PATCH"):
                continue  # they change the data the next call sees; their letters are checked below
            first = await send(client, call, bearer(token(keys["rsa"], v1)))
            second = await send(client, call, bearer(token(keys["rsa"], v2)))
            assert (first.status_code == 403) == (second.status_code == 403), f"{v1} vs {v2}: {call}"


async def test_each_interaction_needs_its_own_letter(client: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    def with_scope(scope: str) -> dict[str, str]:
        return bearer(token(keys["rsa"], scope))

    obs = {k: v for k, v in OBSERVATION.items() if k != "id"}
    assert (await client.get("/fhir/Observation/obs1", headers=with_scope("system/Observation.s"))).status_code == 403
    assert (await client.get("/fhir/Observation/obs1", headers=with_scope("system/Observation.r"))).status_code == 200
    assert (await client.get("/fhir/Observation", headers=with_scope("system/Observation.r"))).status_code == 403
    assert (await client.get("/fhir/Observation", headers=with_scope("system/Observation.s"))).status_code == 200
    denied = await client.post(
        "/fhir/Observation", json=obs, headers={"Content-Type": FHIR, **with_scope("system/Observation.rus")}
    )
    assert denied.status_code == 403
    allowed = await client.post(
        "/fhir/Observation", json=obs, headers={"Content-Type": FHIR, **with_scope("system/Observation.c")}
    )
    assert allowed.status_code == 201
    # A conditional create also searches: c alone is not enough.
    conditional = {"Content-Type": FHIR, "If-None-Exist": "status=final"}
    assert (
        await client.post("/fhir/Observation", json=obs, headers={**conditional, **with_scope("system/Observation.c")})
    ).status_code == 403
    assert (
        await client.post("/fhir/Observation", json=obs, headers={**conditional, **with_scope("system/Observation.cs")})
    ).status_code != 403
    assert (
        await client.delete("/fhir/Observation/obs1", headers=with_scope("system/Observation.cru"))
    ).status_code == 403
    assert (
        await client.delete("/fhir/Observation/obs1", headers=with_scope("system/Observation.d"))
    ).status_code == 200


async def test_definitions_are_readable_with_any_read_scope(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    reader = bearer(token(keys["rsa"], "patient/Observation.r", patient="p1"))
    assert (await client.get("/fhir/PlanDefinition/pd1", headers=reader)).status_code == 200
    assert (await client.get("/fhir/PlanDefinition", headers=reader)).status_code == 200
    writer = bearer(token(keys["rsa"], "system/Observation.c"))
    assert (await client.get("/fhir/PlanDefinition/pd1", headers=writer)).status_code == 403


async def test_patient_scope_outside_the_compartment_sees_nothing(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    """A patient/ token for p2 never gets p1's data, on any route (403, or an answer without p1 in it)."""
    other = bearer(token(keys["rsa"], "patient/*.cruds", patient="p2"))
    leaks = []
    for call in SECURED:
        answer = await send(client, call, other)
        if answer.status_code != 403 and not (answer.status_code < 300 and "Patient/p1" not in answer.text):
            leaks.append(f"{call} -> {answer.status_code} {answer.text[:120]}")
    assert leaks == []
    # The same token for p1 reads p1's data: the refusals above are about the compartment, not the scope.
    own = bearer(token(keys["rsa"], "patient/*.cruds", patient="p1"))
    assert (await client.get("/fhir/Observation/obs1", headers=own)).status_code == 200
    found = (await client.get("/fhir/Observation", headers=own)).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["obs1"]


async def test_patient_search_is_narrowed_to_the_compartment(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    admin = {**bearer(token(keys["rsa"])), "Content-Type": FHIR}
    assert (await client.post("/fhir/Observation", json=observation_of("p2"), headers=admin)).status_code == 201
    p2 = bearer(token(keys["rsa"], "patient/Observation.rs", patient="p2"))
    bundle = (await client.get("/fhir/Observation?status=final", headers=p2)).json()
    subjects = {e["resource"]["subject"]["reference"] for e in bundle.get("entry", [])}
    assert subjects == {"Patient/p2"}
    # Asking for p1 explicitly is ANDed with the compartment: nothing.
    bundle = (await client.get("/fhir/Observation?subject=Patient/p1", headers=p2)).json()
    assert bundle.get("entry", []) == []
    p1 = bearer(token(keys["rsa"], "patient/*.rs", patient="p1"))
    assert (await client.get("/fhir/Observation?_include=Observation:subject", headers=p1)).status_code == 200
    # An _include that brings in a resource outside the compartment is refused as a whole.
    practitioner = {"resourceType": "Practitioner", "id": "dr1"}
    assert (await client.put("/fhir/Practitioner/dr1", json=practitioner, headers=admin)).status_code == 201
    performed = {**observation_of("p1"), "performer": [{"reference": "Practitioner/dr1"}]}
    assert (await client.post("/fhir/Observation", json=performed, headers=admin)).status_code == 201
    included = await client.get("/fhir/Observation?_include=Observation:performer", headers=p1)
    assert included.status_code == 403 and "dr1" not in included.text


async def test_patient_scope_cannot_write_into_another_compartment(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    p2 = {**bearer(token(keys["rsa"], "patient/*.cruds", patient="p2")), "Content-Type": FHIR}
    mine = observation_of("p2")
    assert (await client.post("/fhir/Observation", json=mine, headers=p2)).status_code == 201
    theirs = {**mine, "subject": {"reference": "Patient/p1"}}
    assert (await client.post("/fhir/Observation", json=theirs, headers=p2)).status_code == 403
    # Moving p1's Observation into p2's compartment by an update is refused: the stored one is p1's.
    assert (await client.put("/fhir/Observation/obs1", json={**mine, "id": "obs1"}, headers=p2)).status_code == 403
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": mine},
        {"request": {"method": "DELETE", "url": "Observation/obs1"}}]}  # fmt: skip
    assert (await client.post("/fhir", json=bundle, headers=p2)).status_code == 403
    admin = bearer(token(keys["rsa"]))
    assert (await client.get("/fhir/Observation/obs1", headers=admin)).status_code == 200  # nothing was written


async def test_auditevents_cannot_be_changed_or_deleted(client: httpx.AsyncClient, keys: dict[str, SigningKey]) -> None:
    admin = {**bearer(token(keys["rsa"])), "Content-Type": FHIR}
    for method in ("PUT", "DELETE", "PATCH"):
        answer = await client.request(method, "/fhir/AuditEvent/a1", headers=admin, content=b"{}")
        assert answer.status_code == 405, method
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "DELETE", "url": "AuditEvent/a1"}}],
    }
    assert (await client.post("/fhir", json=bundle, headers=admin)).status_code == 405


def test_support_constants_are_what_the_settings_use(tmp_path: Path) -> None:
    settings = jwt_settings(tmp_path, rsa_key())
    assert (settings.auth_issuer, settings.auth_audience) == (ISSUER, AUDIENCE)


async def test_head_under_a_patient_scope_is_judged_like_get(
    client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    own = await client.head("/fhir/Observation/obs1", headers=bearer(token(keys["rsa"], "patient/*.rs", patient="p1")))
    assert own.status_code == 200 and own.content == b""
    other = await client.head(
        "/fhir/Observation/obs1", headers=bearer(token(keys["rsa"], "patient/*.rs", patient="p2"))
    )
    assert other.status_code == 403 and other.content == b""


# -- the worklist (/app): a session cookie, not a bearer token; its routes are outside the OpenAPI document -------
# Open by design: the sign-in itself, the language preference, sign-out, and the dev issuer (404 outside dev mode).
APP_OPEN = ("/app/login", "/app/callback", "/app/lang", "/app/logout", "/app/dev-issuer/")
APP_VALUES = {"task_id": "t1", "patient_id": "p1"}
TASK = {"resourceType": "Task", "id": "t1", "status": "ready", "intent": "order", "for": {"reference": "Patient/p1"}}


def app_routes() -> list[Call]:
    """Every /app page and action of the route table (a page added later is in the matrix automatically)."""
    app = create_app(Settings(load_pathways_on_start=False))
    calls = []
    for route in _flatten(app.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/app") and not route.path.startswith(APP_OPEN):
            calls += [Call(m, route.path, route.path.format(**APP_VALUES)) for m in sorted(route.methods)]
    return calls


def _flatten(routes: list[BaseRoute]) -> list[BaseRoute]:
    """FastAPI ≥ 0.16x keeps an included router as one entry (`original_router`, routes already prefixed)."""
    out: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out += _flatten(included.routes) if included is not None else [route]
    return out


APP_ROUTES = app_routes()


@pytest.fixture
async def app_client(
    tmp_path: Path, keys: dict[str, SigningKey], make_client: MakeClient
) -> AsyncIterator[httpx.AsyncClient]:
    """jwt mode with the worklist's sign-in at the issuer (respx plays the issuer only)."""
    settings = jwt_settings(tmp_path, keys["rsa"], audit=False, auth_failure_limit=1_000_000,
                            app_oidc_client_id=CLIENT_ID)  # fmt: skip
    with respx.mock(assert_all_called=False) as router:
        FakeIssuer(keys["rsa"]).install(router)
        async with make_client(settings) as http:
            admin = bearer(token(keys["rsa"]))
            for resource in (PATIENT, TASK, {"resourceType": "Practitioner", "id": "dr1"}):
                url = f"/fhir/{resource['resourceType']}/{resource['id']}"
                answer = await http.put(url, json=resource, headers={**admin, "Content-Type": FHIR})
                assert answer.status_code in (200, 201), answer.text
            http.respx = router  # type: ignore[attr-defined]
            yield http


async def _app_send(http: httpx.AsyncClient, call: Call, csrf: str = "", **headers: str) -> httpx.Response:
    if call.method == "POST":
        form = {"csrf": csrf, "action": "claim", "version": "1"}
        return await http.post(call.url, data=form, headers=headers)
    return await http.request(call.method, call.url, headers=headers)


def test_the_app_routes_are_in_the_matrix() -> None:
    assert {str(c) for c in APP_ROUTES} >= {"GET /app", "GET /app/tasks/{task_id}", "POST /app/tasks/{task_id}",
                                            "GET /app/patients/{patient_id}", "GET /app/live"}  # fmt: skip


async def test_app_routes_without_a_session_send_to_the_sign_in(
    app_client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    for headers in ({}, bearer(token(keys["rsa"]))):  # a bearer token is not a session
        for call in APP_ROUTES:
            answer = await _app_send(app_client, call, **headers)
            if call.method == "GET" and call.path != "/app/live":
                assert answer.status_code == 303, str(call)
                assert answer.headers["location"].startswith("/app/login?next=%2Fapp"), str(call)
            else:  # a form post or the event stream cannot follow a redirect: 401
                assert answer.status_code == 401, str(call)


@pytest.mark.parametrize("scope", ["openid fhirUser user/Observation.rs", "openid patient/*.rs"])
async def test_app_routes_with_a_session_lacking_scope_are_403(
    app_client: httpx.AsyncClient, keys: dict[str, SigningKey], scope: str
) -> None:
    issuer = FakeIssuer(keys["rsa"], scope=scope)  # patient/ grants without a patient context reach nothing
    issuer.install(app_client.respx)  # type: ignore[attr-defined]
    assert (await issuer.sign_in(app_client)).status_code == 303
    refused = await app_client.get("/app")
    csrf = csrf_of(refused.text)  # the session is real: its sign-out form carries its CSRF token
    for call in APP_ROUTES:
        answer = await _app_send(app_client, call, csrf)
        assert answer.status_code == 403, f"{call} -> {answer.status_code}"


async def test_app_routes_with_the_right_scope_answer(
    app_client: httpx.AsyncClient, keys: dict[str, SigningKey]
) -> None:
    issuer = FakeIssuer(keys["rsa"])
    issuer.install(app_client.respx)  # type: ignore[attr-defined]
    assert (await issuer.sign_in(app_client)).status_code == 303
    csrf = csrf_of((await app_client.get("/app")).text)
    for call in APP_ROUTES:
        if call.path == "/app/live":
            continue  # an endless stream: answered 200 on a real server in test_web_live.py
        answer = await _app_send(app_client, call, csrf)
        assert answer.status_code == (303 if call.method == "POST" else 200), f"{call} -> {answer.status_code}"

"""Signing in to the worklist: the OIDC code flow with PKCE in dev mode (carepath's own development issuer) and
in jwt mode (an external issuer played by respx), what the session's scopes allow, and the audit trail of what
the pages showed and changed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from tests.integration.auth_support import ISSUER, MakeClient, bearer, rsa_key, token
from tests.integration.rest_support import create
from tests.integration.signin_support import CLIENT_ID, FakeIssuer, csrf_of, dev_sign_in, oidc_settings
from tests.integration.test_audit_trail import audit_search

from carepath.auth.dev import dev_token
from carepath.settings import Settings

WITHOUT_TASKS = "openid fhirUser user/Patient.rs user/Practitioner.rs user/CarePlan.rs"


async def _seed(http: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    patient = await create(http, {"resourceType": "Patient", "name": [{"family": "Martin", "given": ["Anne"]}]},
                           **admin)  # fmt: skip
    other = await create(http, {"resourceType": "Patient", "name": [{"family": "Durand"}]}, **admin)
    nurse = await create(http, {"resourceType": "Practitioner", "name": [{"text": "Claire Idec"}]}, **admin)
    task = await create(http, {"resourceType": "Task", "status": "ready", "intent": "order",
                               "description": "Pain assessment", "for": {"reference": f"Patient/{patient['id']}"}},
                        **admin)  # fmt: skip
    return {"patient": patient["id"], "other": other["id"], "nurse": nurse["id"], "task": task["id"]}


@pytest.fixture
async def dev_app(
    settings: Settings, tmp_path: Path, make_client: MakeClient
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]]:
    """A dev-mode app on the parametrised back end, seeded: (client, an admin bearer header, the ids)."""
    secured = settings.model_copy(update={"auth": "dev", "data_dir": tmp_path / "data"})
    async with make_client(secured) as http:
        admin = bearer(dev_token(secured.data_dir))
        yield http, admin, await _seed(http, admin)


async def test_dev_sign_in_runs_the_code_flow_and_starts_a_session(
    dev_app: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    http, admin, ids = dev_app
    anonymous = await http.get(f"/app/tasks/{ids['task']}")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/app/login?next=%2Fapp%2Ftasks%2F{ids['task']}"
    assert (await http.post(f"/app/tasks/{ids['task']}", data={"action": "start"})).status_code == 401
    assert (await http.get("/app/live")).status_code == 401
    done = await dev_sign_in(http, ids["nurse"], next_url=f"/app/tasks/{ids['task']}")
    assert done.status_code == 303 and done.headers["location"] == f"/app/tasks/{ids['task']}"
    cookie = done.headers["set-cookie"]
    assert "carepath_app=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "carepath_signin=" in cookie  # the pending sign-in is removed once used
    task_page = await http.get(f"/app/tasks/{ids['task']}")
    assert task_page.status_code == 200 and "Pain assessment" in task_page.text
    assert "Signed in as <strong>Claire Idec</strong>" in task_page.text
    assert "Development mode — no sign-in" not in task_page.text
    worklist = await http.get("/app")
    assert worklist.status_code == 200 and "Pain assessment" in worklist.text
    # an action is made by the signed-in practitioner (the workflow's Provenance and the note name them)
    form = {"csrf": csrf_of(task_page.text), "action": "claim", "version": "1"}
    assert (await http.post(f"/app/tasks/{ids['task']}", data=form)).status_code == 303
    stored = (await http.get(f"/fhir/Task/{ids['task']}", headers=admin)).json()
    assert stored["owner"]["reference"] == f"Practitioner/{ids['nurse']}"
    # sign out: the next page goes back to the sign-in
    logout = await http.post("/app/logout", data={"csrf": csrf_of(worklist.text)})
    assert logout.status_code == 200 and "You are signed out." in logout.text
    assert (await http.get("/app")).status_code == 303


async def test_dev_issuer_refuses_replayed_codes_wrong_verifiers_and_forged_state(
    tmp_path: Path, make_client: MakeClient
) -> None:
    secured = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite'}", load_pathways_on_start=False,
                       auth="dev", data_dir=tmp_path / "data", events_embedded=False)  # fmt: skip
    async with make_client(secured) as http:
        ids = await _seed(http, bearer(dev_token(secured.data_dir)))
        discovery = (await http.get("/app/dev-issuer/.well-known/openid-configuration")).json()
        assert discovery["code_challenge_methods_supported"] == ["S256"] and discovery["issuer"] == "urn:carepath:dev"
        login = await http.get("/app/login")
        asked = dict(httpx.URL(login.headers["location"]).params)
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert asked["state"] and asked["nonce"] and asked["client_id"] == CLIENT_ID
        back = await http.post("/app/dev-issuer/authorize", data={**asked, "practitioner": ids["nurse"]})
        code = httpx.URL(back.headers["location"]).params["code"]
        exchange = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
                    "redirect_uri": asked["redirect_uri"], "code_verifier": "x" * 64}  # fmt: skip
        wrong = await http.post("/app/dev-issuer/token", data=exchange)
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        # a forged state at the callback: refused before any exchange
        forged = await http.get("/app/callback", params={"code": code, "state": "forged"})
        assert forged.status_code == 401 and "Sign-in failed" in forged.text
        # the real callback now has no pending sign-in (it was used up by the forged attempt): start again
        assert (await http.get("/app/callback", params={"code": code, "state": asked["state"]})).status_code == 401
        # an open redirect is never offered, and a redirect_uri elsewhere is refused by the issuer
        outside = await dev_sign_in(http, ids["nurse"], next_url="https://evil.example")
        assert outside.headers["location"] == "/app"
        for elsewhere in ("https://evil.example/steal", "https://evil.example/app/callback"):
            evil = {**asked, "redirect_uri": elsewhere}
            assert (await http.get("/app/dev-issuer/authorize", params=evil)).status_code == 400, elsewhere
            posted = await http.post("/app/dev-issuer/authorize", data={**evil, "practitioner": ids["nurse"]})
            assert posted.status_code == 400, elsewhere


async def test_code_is_single_use(tmp_path: Path, make_client: MakeClient) -> None:
    secured = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite'}", load_pathways_on_start=False,
                       auth="dev", data_dir=tmp_path / "data", events_embedded=False)  # fmt: skip
    async with make_client(secured) as http:
        ids = await _seed(http, bearer(dev_token(secured.data_dir)))
        login = await http.get("/app/login")
        asked = dict(httpx.URL(login.headers["location"]).params)
        back = await http.post("/app/dev-issuer/authorize", data={**asked, "practitioner": ids["nurse"]})
        callback = httpx.URL(back.headers["location"])
        assert (await http.get(callback.path, params=dict(callback.params))).status_code == 303
        # the same code again, with a fresh pending sign-in whose state the attacker copied: the issuer says no
        again = await http.get("/app/login")
        state = dict(httpx.URL(again.headers["location"]).params)["state"]
        replay = await http.get(callback.path, params={"code": callback.params["code"], "state": state})
        assert replay.status_code == 401 and "Sign-in failed" in replay.text


async def test_scopes_decide_what_pages_a_session_opens(
    dev_app: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    http, _, ids = dev_app
    await dev_sign_in(http, ids["nurse"], granted=WITHOUT_TASKS)
    for path in ("/app", f"/app/tasks/{ids['task']}", f"/app/patients/{ids['patient']}", "/app/live"):
        answer = await http.get(path)
        assert answer.status_code == 403 and "does not allow this page" in answer.text, path
    # read-only: the pages open, an action is refused and nothing is written
    await dev_sign_in(http, ids["nurse"], granted="openid fhirUser user/*.rs")
    page = await http.get(f"/app/tasks/{ids['task']}")
    assert page.status_code == 200
    claim = await http.post(f"/app/tasks/{ids['task']}", data={"csrf": csrf_of(page.text), "action": "claim",
                                                               "version": "1"})  # fmt: skip
    assert claim.status_code == 403
    # a patient launch context: that patient's page and tasks, nobody else's, and no cross-patient worklist
    await dev_sign_in(http, ids["nurse"], granted="openid fhirUser patient/*.rs user/Practitioner.rs",
                      patient=ids["patient"])  # fmt: skip
    assert (await http.get(f"/app/patients/{ids['patient']}")).status_code == 200
    assert (await http.get(f"/app/tasks/{ids['task']}")).status_code == 200
    assert (await http.get(f"/app/patients/{ids['other']}")).status_code == 403
    assert (await http.get("/app")).status_code == 403


async def test_pages_and_actions_are_audited_with_the_user_as_agent(
    dev_app: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    http, admin, ids = dev_app
    await dev_sign_in(http, ids["nurse"])
    user = f"Practitioner/{ids['nurse']}"
    page = await http.get(f"/app/tasks/{ids['task']}")
    await http.get(f"/app/patients/{ids['patient']}")
    await http.get("/app")
    form = {"csrf": csrf_of(page.text), "action": "start", "version": "1"}
    assert (await http.post(f"/app/tasks/{ids['task']}", data=form)).status_code == 303
    events = await audit_search(http, admin, f"agent={user}", 4)
    by_kind = {(e["subtype"][0]["code"], e["action"]): e for e in events}
    assert set(by_kind) >= {("read", "R"), ("search-type", "E"), ("update", "U")}
    for event in events:
        assert event["agent"][0]["who"]["reference"] == user and event["outcome"] == "0"
    task_read = next(e for e in events if e["subtype"][0]["code"] == "read"
                     and {"reference": f"Task/{ids['task']}"} in [x.get("what") for x in e["entity"]])  # fmt: skip
    patients = [x["what"]["reference"] for x in task_read["entity"] if x.get("role", {}).get("code") == "1"]
    assert patients == [f"Patient/{ids['patient']}"]
    update = by_kind[("update", "U")]
    assert {"reference": f"Task/{ids['task']}"} in [x.get("what") for x in update["entity"]]
    search = by_kind[("search-type", "E")]
    assert any(x.get("description") == "Task search" for x in search["entity"])
    # found by the patient too, as API reads are
    assert await audit_search(http, admin, f"patient=Patient/{ids['patient']}&agent={user}", 4)


async def test_jwt_sign_in_against_the_issuer(tmp_path: Path, make_client: MakeClient) -> None:
    key = rsa_key()
    issuer = FakeIssuer(key, fhir_user="https://ehr.example.test/fhir/Practitioner/dr1")
    with respx.mock(assert_all_called=False) as router:
        issuer.install(router)
        async with make_client(oidc_settings(tmp_path, key)) as http:
            admin = {**bearer(token(key)), "Content-Type": "application/fhir+json"}
            practitioner = {"resourceType": "Practitioner", "id": "dr1", "name": [{"text": "Claire Idec"}]}
            assert (await http.put("/fhir/Practitioner/dr1", json=practitioner, headers=admin)).status_code == 201
            assert (await http.get("/app")).headers["location"] == "/app/login?next=%2Fapp"
            done = await issuer.sign_in(http)
            assert done.status_code == 303 and done.headers["location"] == "/app", done.text
            asked = issuer.asked
            assert asked["code_challenge_method"] == "S256" and asked["client_id"] == CLIENT_ID
            assert asked["redirect_uri"] == "http://testserver/app/callback"
            assert asked["scope"] == "openid fhirUser user/*.rs user/Task.u"
            assert issuer.token_requests[0]["code_verifier"]  # the PKCE verifier went to the token endpoint
            worklist = await http.get("/app")
            assert worklist.status_code == 200 and "Signed in as <strong>Claire Idec</strong>" in worklist.text
            assert "Development mode" not in worklist.text


async def test_jwt_sign_in_refuses_bad_id_tokens(tmp_path: Path, make_client: MakeClient) -> None:
    key = rsa_key()
    cases: list[tuple[str, FakeIssuer]] = [
        ("wrong nonce", FakeIssuer(key, id_claims={"nonce": "another"})),
        ("wrong audience", FakeIssuer(key, id_claims={"aud": "someone-else"})),
        ("wrong issuer", FakeIssuer(key, id_claims={"iss": "https://evil.example.test"})),
        ("expired", FakeIssuer(key, id_claims={"exp": int(time.time()) - 3600})),
        ("another key", FakeIssuer(key, signer=rsa_key())),
        ("no fhirUser", FakeIssuer(key, fhir_user="Patient/p1")),
    ]
    async with make_client(oidc_settings(tmp_path, key)) as http:
        for name, issuer in cases:
            with respx.mock(assert_all_called=False) as router:
                issuer.install(router)
                answer = await issuer.sign_in(http)
                assert answer.status_code == 401 and "Sign-in failed" in answer.text, name
                assert (await http.get("/app")).status_code == 303, name  # no session was started
        # a code the issuer does not know (or a verifier that does not match it): refused at the token endpoint
        issuer = FakeIssuer(key)
        with respx.mock(assert_all_called=False) as router:
            issuer.install(router)
            answer = await issuer.sign_in(http, code="stolen-or-made-up")
        assert answer.status_code == 401 and "invalid_grant" in answer.text


async def test_jwt_session_scopes_come_from_the_access_token(tmp_path: Path, make_client: MakeClient) -> None:
    key = rsa_key()
    issuer = FakeIssuer(key, scope=WITHOUT_TASKS)
    with respx.mock(assert_all_called=False) as router:
        issuer.install(router)
        async with make_client(oidc_settings(tmp_path, key)) as http:
            assert (await issuer.sign_in(http)).status_code == 303
            assert (await http.get("/app")).status_code == 403


async def test_jwt_without_a_client_id_says_sign_in_is_not_configured(tmp_path: Path, make_client: MakeClient) -> None:
    async with make_client(oidc_settings(tmp_path, rsa_key(), app_oidc_client_id="")) as http:
        answer = await http.get("/app/login")
        assert answer.status_code == 503 and "CAREPATH_APP_OIDC_CLIENT_ID" in answer.text
        assert (await http.get("/app/dev-issuer/.well-known/openid-configuration")).status_code == 404


async def test_an_unreachable_issuer_is_a_502_page_and_retried(tmp_path: Path, make_client: MakeClient) -> None:
    key = rsa_key()
    async with make_client(oidc_settings(tmp_path, key)) as http:
        with respx.mock(assert_all_called=False) as router:
            router.get(f"{ISSUER}/.well-known/openid-configuration").respond(500)
            answer = await http.get("/app/login")
        assert answer.status_code == 502 and "did not answer" in answer.text
        issuer = FakeIssuer(key)
        with respx.mock(assert_all_called=False) as router:
            issuer.install(router)
            assert (await issuer.sign_in(http)).status_code == 303  # discovery is tried again, not cached as failed

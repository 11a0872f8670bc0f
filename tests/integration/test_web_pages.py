"""The worklist pages over HTTP on the real app (SQLite and PostgreSQL): what they show, the filters, the actions
through the FHIR update path (CSRF, version check, refusals shown), the patient's timeline and pathway, languages,
session cookie and security headers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tests.conftest import REPO_ROOT
from tests.integration.rest_support import HEADERS, create

from carepath.canonical import BASE
from carepath.web.routes import CSP
from carepath.web.views.fhir import GENERATED_BY, WAITS_FOR

PLAN = f"{BASE}/PlanDefinition/chemo-failure-follow-up"


def _when(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _task(patient: str, careplan: str, title: str, step: str, status: str, due_days: float, **more: Any) -> dict:
    return {"resourceType": "Task", "status": status, "intent": "order", "description": title,
            "for": {"reference": f"Patient/{patient}"}, "basedOn": [{"reference": f"CarePlan/{careplan}"}],
            "restriction": {"period": {"start": _when(-3), "end": _when(due_days)}},
            "extension": [{"url": GENERATED_BY, "extension": [
                {"url": "plan", "valueCanonical": f"{PLAN}|1.0.0"}, {"url": "actionId", "valueString": step},
                {"url": "condition", "valueString": f"Because of rule {step}"}]}, *more.pop("extension", [])],
            "note": [{"text": f"Created by the pathway for {step}"}], **more}  # fmt: skip


async def _seed(client: httpx.AsyncClient) -> dict[str, str]:
    plan = json.loads((REPO_ROOT / "pathways" / "plandefinition-chemo-failure-follow-up.json").read_text())
    assert (await client.put(f"/fhir/PlanDefinition/{plan['id']}", json=plan, headers=HEADERS)).status_code == 201
    patient = await create(client, {"resourceType": "Patient", "name": [{"family": "Martin", "given": ["Anne"]}]})
    nurse = await create(client, {"resourceType": "Practitioner", "name": [{"text": "Claire Idec"}]})
    careplan = await create(client, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                                     "subject": {"reference": f"Patient/{patient['id']}"},
                                     "instantiatesCanonical": [f"{PLAN}|{plan['version']}"]})  # fmt: skip
    p, c = patient["id"], careplan["id"]
    late = await create(
        client,
        _task(
            p,
            c,
            "Performance status reassessment",
            "S02",
            "requested",
            -2,
            owner={"reference": f"Practitioner/{nurse['id']}"},
            priority="urgent",
        ),
    )
    soon = await create(client, _task(p, c, "Pain assessment", "S07", "ready", 3))
    held = await create(client, _task(p, c, "RCP review", "S05", "draft", 20, extension=[
        {"url": WAITS_FOR, "valueReference": {"reference": f"Task/{late['id']}"}}]))  # fmt: skip
    return {"patient": p, "nurse": nurse["id"], "careplan": c, "late": late["id"], "soon": soon["id"],
            "held": held["id"]}  # fmt: skip


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def test_worklist_sorted_by_due_with_names_owner_and_overdue_in_words(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    response = await client.get("/app")
    assert response.status_code == 200
    html = response.text
    assert "Development mode — no sign-in" in html
    assert html.index("Performance status reassessment") < html.index("Pain assessment")  # by due date
    assert "RCP review" not in html  # held (draft) Tasks are not yet work to do
    assert "MARTIN, Anne" in html and "Claire Idec" in html
    assert 'class="badge overdue"><span aria-hidden="true">⚠ </span>Overdue' in html
    assert "‼ </span>Urgent" in html
    assert re.search(r"Overdue <span class=\"count\">\(1\)", html) and re.search(
        r"Due this week <span class=\"count\">\(1\)", html
    )
    assert "<title>Worklist — carepath</title>" in html  # no patient data in the title
    # One policy, the page's own: the API's hardening adds its own only where a response has none.
    assert response.headers.get_list("content-security-policy") == [CSP]
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain http here
    overdue = (await client.get("/app", params={"due": "overdue"})).text
    assert "Performance status reassessment" in overdue and "Pain assessment" not in overdue
    mine = (await client.get("/app", params={"owner": ids["nurse"]})).text
    assert "Performance status reassessment" in mine and "Pain assessment" not in mine
    waiting = (await client.get("/app", params={"status": "draft"})).text
    assert "RCP review" in waiting and "Pain assessment" not in waiting
    bad = await client.get("/app", params={"due": "yesterday"})
    assert bad.status_code == 400 and "due must be one of" in bad.text


async def test_task_page_explains_and_links_dependencies(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    html = (await client.get(f"/app/tasks/{ids['late']}")).text
    assert "Because of rule S02" in html and "Created by the pathway for S02" in html
    assert f'href="/app/tasks/{ids["held"]}">RCP review</a>' in html  # what waits for it
    assert "Claire Idec" in html and "MARTIN, Anne" in html
    held = (await client.get(f"/app/tasks/{ids['held']}")).text
    assert f'href="/app/tasks/{ids["late"]}">Performance status reassessment</a>' in held  # what it waits for
    assert (await client.get("/app/tasks/nope")).status_code == 404


async def test_complete_with_a_note_goes_through_the_update_and_shows_in_history(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    page = (await client.get(f"/app/tasks/{ids['soon']}")).text
    csrf = _csrf(page)
    refused = await client.post(f"/app/tasks/{ids['soon']}", data={"csrf": csrf, "action": "complete", "version": "1",
                                                                   "note": "Too early"})  # fmt: skip
    assert refused.status_code == 422 and "This change was refused" in refused.text
    assert "ready" in refused.text and "completed" in refused.text  # the state machine names both states
    start = {"csrf": csrf, "action": "start", "version": "1"}
    assert (await client.post(f"/app/tasks/{ids['soon']}", data=start)).status_code == 303
    form = {"csrf": csrf, "action": "complete", "version": "2", "note": "Done by phone"}
    response = await client.post(f"/app/tasks/{ids['soon']}", data=form)
    assert response.status_code == 303 and response.headers["location"] == f"/app/tasks/{ids['soon']}?done=complete"
    stored = (await client.get(f"/fhir/Task/{ids['soon']}", headers=HEADERS)).json()
    assert stored["status"] == "completed" and stored["meta"]["versionId"] == "3"
    assert stored["note"][-1]["text"] == "Done by phone"
    assert stored["note"][-1]["authorReference"]["reference"] == "Practitioner/dev-coordinator"
    after = (await client.get(response.headers["location"])).text
    assert "The task is completed." in after and "Done by phone" in after
    # the status changes in the history, with who made them (the workflow's Provenance names the page's user)
    assert re.search(r"<td>3</td><td>[^<]+</td><td>Completed</td><td>Dev Coordinator \(IDEC\)</td>", after)
    assert re.search(r"<td>2</td><td>[^<]+</td><td>In progress</td>", after)


async def test_stale_version_is_refused_and_the_typed_text_kept(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    csrf = _csrf((await client.get(f"/app/tasks/{ids['soon']}")).text)
    first = {"csrf": csrf, "action": "hold", "version": "1", "reason": "Patient in hospital"}
    assert (await client.post(f"/app/tasks/{ids['soon']}", data=first)).status_code == 303
    second = {"csrf": csrf, "action": "cancel", "version": "1", "reason": "Duplicate of another task"}
    response = await client.post(f"/app/tasks/{ids['soon']}", data=second)
    assert response.status_code == 409
    assert "Someone else changed this task" in response.text and "version 2" in response.text
    assert "Duplicate of another task</textarea>" in response.text  # nothing typed is lost
    stored = (await client.get(f"/fhir/Task/{ids['soon']}", headers=HEADERS)).json()
    assert stored["status"] == "on-hold" and stored["statusReason"]["text"] == "Patient in hospital"


async def test_forms_need_the_csrf_token_and_a_reason(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    csrf = _csrf((await client.get(f"/app/tasks/{ids['soon']}")).text)
    forged = await client.post(f"/app/tasks/{ids['soon']}", data={"action": "cancel", "version": "1", "reason": "x",
                                                                  "csrf": "forged"})  # fmt: skip
    assert forged.status_code == 403
    reasonless = await client.post(f"/app/tasks/{ids['soon']}", data={"action": "reject", "version": "1",
                                                                      "csrf": csrf, "reason": " "})  # fmt: skip
    assert reasonless.status_code == 400 and "A reason is needed to reject" in reasonless.text
    stored = (await client.get(f"/fhir/Task/{ids['soon']}", headers=HEADERS)).json()
    assert stored["status"] == "ready" and stored["meta"]["versionId"] == "1"


async def test_patient_page_draws_timeline_and_pathway(client: httpx.AsyncClient) -> None:
    ids = await _seed(client)
    response = await client.get(f"/app/patients/{ids['patient']}")
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 2
    assert "Timeline of 3 tasks: 0 done, 2 due, 1 late" in html
    assert re.search(r'<g class="step overdue"><title>S02[^<]*: overdue</title>', html)
    assert re.search(r'<g class="step waiting"><title>[^<]*: waiting</title>', html)
    assert 'class="step not-applicable"' in html  # steps without a Task
    assert "<title>Patient — carepath</title>" in html


async def test_language_from_accept_language_and_switch(client: httpx.AsyncClient) -> None:
    await _seed(client)
    french = await client.get("/app", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr">' in french.text and "Liste de travail" in french.text and "En retard" in french.text
    switched = await client.get("/app/lang", params={"lang": "en", "next": "/app?due=overdue"},
                                headers={"Accept-Language": "fr"})  # fmt: skip
    assert switched.status_code == 303 and switched.headers["location"] == "/app?due=overdue"
    english = await client.get("/app", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in english.text  # the user's choice wins over the browser's
    outside = await client.get("/app/lang", params={"lang": "fr", "next": "https://evil.example"})
    assert outside.headers["location"] == "/app"


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    csrf = _csrf((await client.get("/app")).text)
    response = await client.post("/app/logout", data={"csrf": csrf})
    assert response.status_code == 200 and "You are signed out." in response.text
    assert 'carepath_app=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]

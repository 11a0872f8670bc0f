"""Search parameter types through HTTP: token, string, date, reference, `:missing`, unknown parameters."""

from __future__ import annotations

import httpx
from rest_support import (
    ECOG,
    HEADERS,
    LOINC,
    MRN,
    NSCLC,
    SNOMED,
    assert_outcome,
    create,
    ecog,
    link,
    match_ids,
    patient,
    search,
    task,
)


async def ids_of(client: httpx.AsyncClient, path: str, **params: str) -> set[str]:
    return set(match_ids(await search(client, path, **params)))


async def test_token_with_and_without_system(client: httpx.AsyncClient) -> None:
    a = (await create(client, patient("Token", mrn="111")))["id"]
    b = (await create(client, {**patient("Other"), "identifier": [{"system": "urn:other", "value": "111"}]}))["id"]
    assert await ids_of(client, "Patient", identifier=f"{MRN}|111") == {a}
    assert await ids_of(client, "Patient", identifier="111") == {a, b}
    assert await ids_of(client, "Patient", identifier="|111") == set()
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{a}"},
        "code": {"coding": [{"system": SNOMED, "code": NSCLC}]},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
    }  # fmt: skip
    cid = (await create(client, condition))["id"]
    assert await ids_of(client, "Condition", code=f"{SNOMED}|{NSCLC}", **{"clinical-status": "active"}) == {cid}
    assert await ids_of(client, "Condition", code=f"{LOINC}|{NSCLC}") == set()


async def test_string_prefix_case_accents_exact_contains(client: httpx.AsyncClient) -> None:
    muller = (await create(client, patient("Müller")))["id"]
    mullins = (await create(client, patient("Mullins")))["id"]
    assert await ids_of(client, "Patient", name="mul") == {muller, mullins}
    assert await ids_of(client, "Patient", name="MULLER") == {muller}
    assert await ids_of(client, "Patient", **{"name:exact": "Müller"}) == {muller}
    assert await ids_of(client, "Patient", **{"name:exact": "muller"}) == set()
    assert await ids_of(client, "Patient", **{"name:contains": "LIN"}) == {mullins}
    assert await ids_of(client, "Patient", name="ller") == set()  # plain string search is a prefix match


async def test_dates_birthdate_observation_and_due_date(client: httpx.AsyncClient) -> None:
    old = (await create(client, patient("Old", birth_date="1950-06-15")))["id"]
    young = (await create(client, patient("Young", birth_date="1990-01-01")))["id"]
    assert await ids_of(client, "Patient", birthdate="1950") == {old}
    assert await ids_of(client, "Patient", birthdate="lt1960-01-01") == {old}
    assert await ids_of(client, "Patient", birthdate="ge1990-01-01") == {young}
    march = (await create(client, ecog(old, "2025-03-10T09:00:00Z", 1)))["id"]
    await create(client, ecog(old, "2025-05-02T09:00:00+02:00", 2))
    assert await ids_of(client, "Observation", date="2025-03") == {march}
    assert await ids_of(client, "Observation", code=f"{LOINC}|{ECOG}", date="le2025-03-31") == {march}
    soon = (await create(client, task(old, due="2025-01-10")))["id"]
    late = (await create(client, task(old, due="2025-12-01")))["id"]
    assert await ids_of(client, "Task", **{"due-date": "lt2025-06-01"}) == {soon}
    assert await ids_of(client, "Task", **{"due-date": "gt2025-06-01"}) == {late}


async def test_references_by_type_and_by_id(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Ref")))["id"]
    doctor = (await create(client, {"resourceType": "Practitioner", "name": [{"family": "House"}]}))["id"]
    mine = (await create(client, task(pid, owner=f"Practitioner/{doctor}")))["id"]
    other = (await create(client, task(pid, owner="Practitioner/someone-else")))["id"]
    assert await ids_of(client, "Task", owner=f"Practitioner/{doctor}") == {mine}
    assert await ids_of(client, "Task", owner=doctor) == {mine}
    assert await ids_of(client, "Task", patient=pid) == {mine, other}
    assert await ids_of(client, "Task", patient=f"Patient/{pid}", owner="Practitioner/someone-else") == {other}


async def test_missing_modifier(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Missing")))["id"]
    with_due = (await create(client, task(pid, due="2025-01-01")))["id"]
    without = (await create(client, task(pid)))["id"]
    assert await ids_of(client, "Task", **{"due-date:missing": "true"}) == {without}
    assert await ids_of(client, "Task", **{"due-date:missing": "false"}) == {with_due}
    assert_outcome(await client.get("/fhir/Task", params={"due-date:missing": "maybe"}), 400)


async def test_search_by_post_with_a_form_body(client: httpx.AsyncClient) -> None:
    wanted = (await create(client, patient("Formbody", birth_date="1970-01-01")))["id"]
    await create(client, patient("Formbody", birth_date="1980-01-01"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/fhir/Patient/_search?name=formbody", content=b"birthdate=1970", headers=form)
    assert response.status_code == 200
    assert match_ids(response.json()) == [wanted]


async def test_unknown_parameters_are_ignored_by_default_and_400_when_strict(client: httpx.AsyncClient) -> None:
    """R4 §3.1.1.4: servers SHOULD ignore unknown parameters and say what they applied in the `self` link; a
    client that cannot risk a silently ignored filter (a worklist) asks for `Prefer: handling=strict`."""
    pid = (await create(client, patient("Lenient")))["id"]
    strict = {"Prefer": "handling=strict"}
    assert_outcome(await client.get("/fhir/Patient", params={"shoe-size": "42"}, headers=strict), 400)
    assert_outcome(await client.get("/fhir/Patient", params={"name:fuzzy": "x"}, headers=strict), 400)
    assert_outcome(await client.get("/fhir/Patient", params={"_totalMethod": "count"}, headers=strict), 400)
    params = [("family", "lenient"), ("shoe-size", "42"), ("name:fuzzy", "x"), ("_totalMethod", "count")]
    response = await client.get("/fhir/Patient", params=params)
    assert response.status_code == 200
    bundle = response.json()
    assert match_ids(bundle) == [pid]
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert [o["issue"][0]["expression"] for o in outcomes] == [["shoe-size"], ["name:fuzzy"], ["_totalMethod"]]
    assert all(o["issue"][0]["severity"] == "warning" and len(o["issue"]) == 1 for o in outcomes)
    assert link(bundle, "self") == "http://testserver/fhir/Patient?family=lenient&_count=20&_offset=0"  # as applied
    counted = (await client.get("/fhir/Patient", params=[*params, ("_count", "0")])).json()
    assert counted["total"] == 1 and len(counted["entry"]) == 3
    assert link(counted, "self") == "http://testserver/fhir/Patient?family=lenient&_count=0"


async def test_strict_handling_applies_to_searches_inside_a_batch(client: httpx.AsyncClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": "Patient?shoe-size=42"}}]}  # fmt: skip
    strict = (await client.post("/fhir", json=bundle, headers={**HEADERS, "Prefer": "handling=strict"})).json()
    assert strict["entry"][0]["response"]["status"] == "400"
    lenient = (await client.post("/fhir", json=bundle, headers=HEADERS)).json()
    assert lenient["entry"][0]["response"]["status"] == "200 OK"


async def test_worklist_query(client: httpx.AsyncClient) -> None:
    pid = (await create(client, patient("Worklist")))["id"]
    owner = "Practitioner/coordinator-1"
    wanted = [
        ("requested", "2025-02-01"), ("ready", "2025-01-01"), ("cancelled", "2024-12-01"), ("requested", "2025-03-01"),
    ]  # fmt: skip
    made = {}
    for status, due in wanted:
        made[(status, due)] = (await create(client, task(pid, status=status, due=due, owner=owner)))["id"]
    await create(client, task(pid, status="ready", due="2024-01-01", owner="Practitioner/someone-else"))
    bundle = await search(client, "Task", owner=owner, status="requested,ready", _sort="due-date", _count="50")
    assert match_ids(bundle) == [made[("ready", "2025-01-01")], made[("requested", "2025-02-01")],
                                 made[("requested", "2025-03-01")]]  # fmt: skip

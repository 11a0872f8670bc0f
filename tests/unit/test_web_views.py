"""The worklist's pure view models: filters and the search they become, due windows in the hospital's time zone,
rows, the task page's reason/dependencies/history, the actions' new Task versions, i18n, and the two SVGs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from carepath.content.diagram import step_edges
from carepath.content.walk import step_actions
from carepath.errors import InvalidRequest
from carepath.web.views import actions, task, worklist
from carepath.web.views.fhir import GENERATED_BY, WAITS_FOR
from carepath.web.views.i18n import EN, FR, Translator, format_date, negotiate
from carepath.web.views.live import live_message
from carepath.web.views.pathway import layers, pathway_svg, step_state
from carepath.web.views.timeline import timeline_svg

PARIS = ZoneInfo("Europe/Paris")
# 22:30 UTC on 1 December is 23:30 in Paris: "today" ends half an hour later, at Paris midnight.
NOW = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
ME = actions.Actor("Practitioner/me", "Me")


def _task(tid: str, status: str = "requested", end: str | None = "2026-12-05T10:00:00Z", **more: object) -> dict:
    body: dict = {"resourceType": "Task", "id": tid, "meta": {"versionId": "1"}, "status": status, "intent": "order",
                  "for": {"reference": "Patient/P1"}, "description": f"task {tid}", **more}  # fmt: skip
    if end is not None:
        body["restriction"] = {"period": {"start": "2026-11-28T10:00:00Z", "end": end}}
    return body


def _made_by(step: str, *conditions: str) -> dict:
    parts = [{"url": "plan", "valueCanonical": "https://x/PlanDefinition/p|1"},
             {"url": "actionId", "valueString": step},
             *({"url": "condition", "valueString": c} for c in conditions)]  # fmt: skip
    return {"url": GENERATED_BY, "extension": parts}


def test_filters_round_trip_and_refuse_unknown_values() -> None:
    filters = worklist.parse_filters({"status": "on-hold", "due": "overdue", "priority": "urgent", "page": "2"})
    assert filters == worklist.Filters(status="on-hold", due="overdue", priority="urgent", page=2)
    assert worklist.parse_filters(dict(pair.split("=") for pair in filters.query().split("&"))) == filters
    assert worklist.Filters().query() == ""  # defaults stay out of the URL
    for bad in ({"status": "done"}, {"due": "yesterday"}, {"priority": "high"}, {"page": "0"}, {"owner": "a/b"}):
        with pytest.raises(InvalidRequest):
            worklist.parse_filters(bad)


def test_windows_are_disjoint_and_follow_local_midnight() -> None:
    bounds = worklist.window_bounds(NOW, PARIS)
    assert bounds["overdue"] == (None, NOW)
    assert bounds["today"] == (NOW, datetime(2026, 12, 1, 23, 0, tzinfo=UTC))  # Paris midnight, not UTC's
    assert bounds["today"][1] == bounds["week"][0]
    assert bounds["week"][1] == bounds["upcoming"][0] == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    assert worklist.due_state(_task("a", end="2026-12-01T22:45:00Z"), NOW, PARIS) == "today"
    assert worklist.due_state(_task("a", end="2026-12-01T23:15:00Z"), NOW, PARIS) == "week"
    assert worklist.due_state(_task("a", end="2026-12-01T22:00:00Z"), NOW, PARIS) == "overdue"
    assert worklist.due_state(_task("a", "completed", end="2026-11-01T00:00:00Z"), NOW, PARIS) == "done"
    assert worklist.due_state(_task("a", end=None), NOW, PARIS) == "none"


def test_search_pairs() -> None:
    filters = worklist.Filters(owner="me", role="http://snomed.info/sct|1", patient="P1", priority="asap",
                               due="overdue")  # fmt: skip
    pairs = worklist.search_pairs(filters, NOW, PARIS)
    assert ("status", "requested,received,accepted,ready,in-progress,on-hold") in pairs  # open, held drafts left out
    assert ("owner", "Practitioner/me") in pairs and ("subject", "Patient/P1") in pairs
    assert ("performer", "http://snomed.info/sct|1") in pairs and ("priority", "asap") in pairs
    assert ("due-date", "lt2026-12-01T22:30:00Z") in pairs and not any(v.startswith("ge") for _, v in pairs)
    assert ("owner:missing", "true") in worklist.search_pairs(worklist.Filters(owner="none"), NOW, PARIS)
    assert not any(k == "status" for k, _ in worklist.search_pairs(worklist.Filters(status="all"), NOW, PARIS))
    week = worklist.search_pairs(worklist.Filters(), NOW, PARIS, window="week")
    assert ("due-date", "ge2026-12-01T23:00:00Z") in week and ("due-date", "lt2026-12-07T23:00:00Z") in week


def test_rows_name_patient_and_owner_and_flag_urgent() -> None:
    tasks = [_task("a", priority="urgent", owner={"reference": "Practitioner/x"}), _task("b")]
    related = {"Patient/P1": {"resourceType": "Patient", "id": "P1", "name": [{"family": "Martin", "given": ["Anne"]}]},
               "Practitioner/x": {"resourceType": "Practitioner", "id": "x", "name": [{"text": "Dr X"}]}}  # fmt: skip
    first, second = worklist.rows(tasks, related, NOW, PARIS)
    assert (first.patient, first.owner, first.urgent, first.due_state) == ("MARTIN, Anne", "Dr X", True, "week")
    assert (second.owner, second.urgent) == ("", False)


def test_task_reason_dependencies_and_history() -> None:
    pred = _task("p", "completed")
    me = _task("me", "draft", extension=[_made_by("S05", "Progression"), {"url": WAITS_FOR,
               "valueReference": {"reference": "Task/p"}}], note=[{"text": "Created because X"}])  # fmt: skip
    after = _task("after", "draft", extension=[{"url": WAITS_FOR, "valueReference": {"reference": "Task/me"}}])
    why = task.reason(me)
    assert (why.step_id, why.conditions, why.notes) == ("S05", ("Progression",), ("Created because X",))
    assert task.predecessors(me, {"Task/p": pred}) == [task.Link("p", "task p", "completed")]
    assert task.dependants(me, [pred, me, after]) == [task.Link("after", "task after", "draft")]
    v1 = {**me, "meta": {"versionId": "1", "lastUpdated": "2026-12-01T10:00:00Z"}}
    v2 = {**me, "meta": {"versionId": "2", "lastUpdated": "2026-12-01T11:00:00Z"}, "note": [{"text": "edit"}]}
    v3 = {**me, "status": "on-hold", "statusReason": {"text": "patient in hospital"},
          "meta": {"versionId": "3", "lastUpdated": "2026-12-01T12:00:00Z"}}  # fmt: skip
    prov = {"resourceType": "Provenance", "target": [{"reference": "Task/me/_history/1"}],
            "agent": [{"who": {"display": "carepath"}}], "reason": [{"text": "generated by $apply"}]}  # fmt: skip
    changes = task.history([v3, v1, v2], [prov])
    assert [(c.version, c.status, c.who, c.why) for c in changes] == [
        ("1", "draft", "carepath", "generated by $apply"), ("3", "on-hold", "", "patient in hospital")]  # fmt: skip


def test_actions_build_the_next_version() -> None:
    current = _task("t", "in-progress", statusReason={"text": "old"})
    done = actions.changed_task(current, "complete", {"note": "called the GP"}, ME, NOW)
    assert done["status"] == "completed" and "statusReason" not in done and "meta" not in done
    assert done["note"][-1] == {"authorReference": {"reference": "Practitioner/me", "display": "Me"},
                                "time": "2026-12-01T22:30:00+00:00", "text": "called the GP"}  # fmt: skip
    assert actions.changed_task(current, "claim", {}, ME, NOW)["owner"]["reference"] == "Practitioner/me"
    assert actions.changed_task(current, "assign", {"owner": "x"}, ME, NOW)["owner"] == {"reference": "Practitioner/x"}
    held = actions.changed_task(current, "hold", {"reason": "waiting for scan"}, ME, NOW)
    assert (held["status"], held["statusReason"]) == ("on-hold", {"text": "waiting for scan"})
    with pytest.raises(actions.MissingInput):
        actions.changed_task(current, "cancel", {"reason": "  "}, ME, NOW)
    with pytest.raises(actions.MissingInput):
        actions.changed_task(current, "assign", {}, ME, NOW)
    with pytest.raises(InvalidRequest):
        actions.changed_task(current, "delete", {}, ME, NOW)
    assert actions.offered(_task("c", "completed")) == []
    assert "resume" in actions.offered(_task("h", "on-hold")) and "start" not in actions.offered(current)


def test_languages_and_dates() -> None:
    assert set(FR) == set(EN)  # every label exists in both languages
    assert negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate("de, en;q=0.5, fr;q=0.7") == "fr"
    assert negotiate("de") == "en" and negotiate("en", chosen="fr") == "fr" and negotiate(None, chosen="xx") == "en"
    assert Translator("fr")("worklist.count", n=3) == "3 tâches"
    assert format_date(NOW, "fr", PARIS) == "1 déc. 2026 à 23:30"
    assert format_date(NOW, "en", ZoneInfo("UTC")) == "1 Dec 2026, 22:30"


def _svg(markup: str) -> ElementTree.Element:
    root = ElementTree.fromstring(markup)  # well-formed XML, or this raises
    assert root.get("role") == "img" and root.find("{http://www.w3.org/2000/svg}title") is not None
    return root


def test_timeline_marks_done_due_late_and_escapes_text() -> None:
    tasks = [_task("a", "completed", end="2026-11-30T10:00:00Z"), _task("b", end="2026-11-30T10:00:00Z"),
             _task("c", end="2026-12-09T10:00:00Z", description="<script>x</script>")]  # fmt: skip
    markup = timeline_svg(tasks, NOW, PARIS, Translator("en"))
    root = _svg(markup)
    assert root.findtext("{http://www.w3.org/2000/svg}title") == "Timeline of 3 tasks: 1 done, 1 due, 1 late"
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert markup.count('class="m-done"') == 1 and markup.count('class="m-late"') == 1


PLAN = {"resourceType": "PlanDefinition", "id": "p", "title": "Pathway", "action": [{"title": "group", "action": [
    {"id": "A", "title": "first", "definitionCanonical": "x"},
    {"id": "B", "title": "second", "definitionCanonical": "x", "relatedAction": [
        {"actionId": "A", "relationship": "after-end"}]},
    {"id": "C", "title": "third", "definitionCanonical": "x", "relatedAction": [
        {"actionId": "B", "relationship": "after-end"}]},
    {"id": "D", "title": "never", "definitionCanonical": "x"}]}]}  # fmt: skip


def test_pathway_layers_and_states() -> None:
    tasks = [_task("a", "completed", extension=[_made_by("A")]),
             _task("b", "requested", end="2026-11-30T00:00:00Z", extension=[_made_by("B")]),
             _task("c", "draft", extension=[_made_by("C")])]  # fmt: skip
    steps = step_actions(PLAN)
    assert layers(steps, step_edges(steps)) == {"A": 0, "B": 1, "C": 2, "D": 0}
    markup = pathway_svg(PLAN, tasks, NOW, Translator("en"))
    _svg(markup)
    for state in ("done", "overdue", "waiting", "not-applicable"):
        assert f'class="step {state}"' in markup
    assert step_state(_task("x", "in-progress"), NOW) == "in-progress"
    assert ">overdue</text>" in markup  # the state is written, not only coloured


def test_live_frames_carry_kind_and_ids_only() -> None:
    task_event = {"type": "dev.carepath.task.created", "subject": "Patient/P1",
                  "data": {"resourceType": "Task", "id": "t1", "description": "Pain assessment"}}  # fmt: skip
    frame = live_message(json.dumps(task_event).encode())
    assert frame == 'event: change\ndata: {"type":"task.created","id":"t1","patient":"P1"}\n\n'
    alert = live_message(json.dumps({**task_event, "type": "dev.carepath.task.overdue"}))
    assert alert is not None and alert.startswith("event: alert\n") and "Pain" not in alert
    assert live_message(json.dumps({"type": "dev.carepath.fhir.resource", "data": {}})) is None
    assert live_message(b"not json") is None and live_message(None) is None

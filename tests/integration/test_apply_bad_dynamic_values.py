"""Deliberately bad dynamicValues, transient and persisted, on SQLite and PostgreSQL: whatever the expression
produces is checked like any stored resource (validation is quick for what was seen before, never skipped), so
a wrong type, an impossible date, a code outside a required binding or a value at an element R4 does not have
is a 422 naming the dynamicValue's expression — and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from apply_support import PERSIST, expression, parameters, pathway, post_apply, store_pathway, stored, subject
from rest_support import assert_outcome, create, patient

# (dynamicValue path, FHIRPath expression, what the refusal says); all on the first action, a Task.
BAD = {
    "wrong type": ("priority", "5", "Expected a JSON string"),
    "impossible due date": ("restriction.period.end", "'2024-02-30T10:00:00Z'", "invalid date"),
    "not a date at all": ("authoredOn", "'last tuesday'", "datetime"),
    "code outside a required binding": ("priority", "'soon'", "required value set"),
    "unknown element": ("reasonForReferral.text", "'x'", "Unknown element 'reasonForReferral'"),
}
STORED = ("CarePlan", "Task", "ServiceRequest", "CommunicationRequest", "Provenance")


def _bad_plan(path: str, text: str) -> dict[str, Any]:
    plan = pathway(version="9.0.0")
    plan["action"][0]["dynamicValue"] = [
        {"path": "description", "expression": expression("'Reassess (first, and fine)'")},
        {"path": path, "expression": expression(text)},
    ]
    return plan


@pytest.mark.parametrize("persist", [False, True], ids=["transient", "persisted"])
@pytest.mark.parametrize("case", list(BAD))
async def test_a_bad_dynamic_value_is_a_422_naming_its_expression(
    client: httpx.AsyncClient, case: str, persist: bool
) -> None:
    path, text, says = BAD[case]
    await store_pathway(client)  # the good pathway first: its resources are then known to validation
    plan = await create(client, _bad_plan(path, text))
    patient_id = (await create(client, patient("Bad")))["id"]
    body = parameters(subject(patient_id), *([PERSIST] if persist else []))
    outcome = assert_outcome(await post_apply(client, f"PlanDefinition/{plan['id']}", body), 422)
    head = outcome["issue"][0]
    assert head["expression"] == ["PlanDefinition.action[0].dynamicValue[1].expression"], outcome
    assert says.lower() in " ".join(i["diagnostics"] for i in outcome["issue"]).lower(), outcome
    for res_type in STORED:
        assert await stored(client, res_type) == [], res_type


async def test_the_same_pathway_with_good_values_applies_and_stores(client: httpx.AsyncClient) -> None:
    """The control: the dynamicValues above with a value of the right kind are accepted and stored."""
    await store_pathway(client)
    plan = await create(client, _bad_plan("priority", "'urgent'"))
    patient_id = (await create(client, patient("Good")))["id"]
    response = await post_apply(client, f"PlanDefinition/{plan['id']}", parameters(subject(patient_id), PERSIST))
    assert response.status_code == 200, response.text
    (task,) = [t for t in await stored(client, "Task") if t.get("priority") == "urgent"]
    assert task["description"] == "Reassess (first, and fine)"

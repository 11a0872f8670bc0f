"""Reference rewriting of transaction entries (service/bundles.py): what changes is copied, the rest is shared and
the caller's resource is never changed (a unit of work may run again on the same input)."""

from __future__ import annotations

import copy

from carepath.service.bundles import _replace_references


def test_only_the_path_to_a_rewritten_reference_is_copied_and_the_input_is_unchanged() -> None:
    body = {"resourceType": "Task", "for": {"reference": "urn:uuid:p"}, "code": {"coding": [{"code": "x"}]},
            "basedOn": [{"reference": "CarePlan/kept"}, {"reference": "urn:uuid:c"}]}  # fmt: skip
    before = copy.deepcopy(body)
    out = _replace_references(body, {"urn:uuid:p": "Patient/1", "urn:uuid:c": "CarePlan/2"})
    assert out == {**before, "for": {"reference": "Patient/1"},
                   "basedOn": [{"reference": "CarePlan/kept"}, {"reference": "CarePlan/2"}]}  # fmt: skip
    assert body == before
    assert out["code"] is body["code"] and out["basedOn"][0] is body["basedOn"][0]
    assert out["for"] is not body["for"] and out["basedOn"] is not body["basedOn"]


def test_nothing_to_rewrite_returns_the_resource_itself() -> None:
    body = {"resourceType": "Task", "for": {"reference": "Patient/1"}, "input": [{"valueString": "a"}]}
    assert _replace_references(body, {"urn:uuid:other": "Patient/2"}) is body

"""The README's generated part matches the content; the sample patients are valid R4 with the spec's codes only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from spec_codes import SPEC_CODES, allowed

from carepath.content import codes, walk
from carepath.content.diagram import mermaid
from carepath.content.readme import generated_block, replace_block
from carepath.content.samples import ALL_CASES, sample_case, sample_patients
from carepath.fhir.models import model_class

README = Path(__file__).resolve().parents[3] / "pathways" / "README.md"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_the_readme_holds_the_block_generated_from_the_shipped_content(
    plan: dict[str, Any], content: list[dict[str, Any]]
) -> None:
    readme = README.read_text(encoding="utf-8")
    assert generated_block(plan, content) in readme, "run: python scripts/pathway_diagram.py --write"


def test_the_diagram_draws_every_step_and_every_hold(plan: dict[str, Any]) -> None:
    diagram = mermaid(plan)
    for action in walk.step_actions(plan):
        assert f"{action['id'].replace('-', '_')}" in diagram
    assert "S02 --> S05" in diagram and "S05 --> S19" in diagram
    assert "S08 -.->|informs| S09" in diagram
    assert "S05 --> S15_urgent" not in diagram  # urgent radiotherapy does not wait for the RCP


def test_replacing_the_block_needs_the_markers(plan: dict[str, Any], content: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="no"):
        replace_block("# a README without markers\n", plan, content)
    stale = README.read_text(encoding="utf-8").replace("S05 RCP / tumour board review", "S05 something else")
    assert replace_block(stale, plan, content) == README.read_text(encoding="utf-8")


def test_sample_patients_are_valid_r4_bundles_dated_relative_to_now() -> None:
    bundles = sample_patients(NOW)
    assert [b["id"] for b in bundles] == [f"sample-{case.key}" for case in ALL_CASES]
    for bundle in bundles:
        model_class("Bundle").model_validate(bundle)
        ids = [e["resource"]["id"] for e in bundle["entry"]]
        assert len(ids) == len(set(ids))
    p07 = sample_case("P07").bundle(NOW)
    observations = [e["resource"] for e in p07["entry"] if e["resource"]["resourceType"] == "Observation"]
    (status,) = [o for o in observations if o["code"]["coding"][0]["code"] == codes.DISEASE_STATUS]
    assert status["effectiveDateTime"] == "2024-12-31T09:00:00+00:00"  # §5 P07: dated 60 days ago


def test_sample_patients_use_only_codes_the_specification_lists() -> None:
    unknown = {
        (system, code)
        for bundle in sample_patients(NOW)
        for _, system, code in walk.codings(bundle)
        if not allowed(system, code)
    }
    assert unknown == set()
    assert len(SPEC_CODES) > 3


def test_sample_case_keys_cover_the_ten_scenarios_and_five_negatives() -> None:
    assert [c.key for c in ALL_CASES] == [f"P{n:02d}" for n in range(1, 11)] + ["NA", "NB", "NC", "ND", "NE"]
    with pytest.raises(KeyError):
        sample_case("P11")

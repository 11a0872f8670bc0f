"""Loading a pathway folder: parsed as written, R4-checked, anything else refused with the file named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from carepath.content.loader import load_pathway_files
from carepath.errors import InvalidResource
from carepath.fhir.models import is_supported


def test_the_shipped_folder_loads_and_every_file_is_served(content: list[dict[str, Any]]) -> None:
    types = {r["resourceType"] for r in content}
    assert types == {"PlanDefinition", "ActivityDefinition", "CodeSystem"}
    assert all(is_supported(t) for t in types)


def test_decimals_are_kept_as_written(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(
        '{"resourceType": "ActivityDefinition", "status": "draft", "quantity": {"value": 1.50}}', encoding="utf-8"
    )
    (resource,) = load_pathway_files(tmp_path)
    assert resource["quantity"]["value"] == Decimal("1.50") and str(resource["quantity"]["value"]) == "1.50"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "bad.json"),
        ('{"resourceType": "Patient"}', "not Patient"),
        ('{"resourceType": "PlanDefinition", "status": "bogus-but-structural", "action": "not a list"}', "valid R4"),
        ("[1, 2]", "bad.json"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.json").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidResource, match=message):
        load_pathway_files(tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidResource, match="not found"):
        load_pathway_files(tmp_path / "nope")

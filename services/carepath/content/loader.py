"""Reading the shipped pathway files: one FHIR resource per JSON file, checked before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from carepath import jsonutil
from carepath.errors import InvalidRequest, InvalidResource
from carepath.fhir.models import model_class

# The definitional resources a pathway folder may hold (DESIGN.md, data flow 1), plus the CodeSystem of our local
# codes: it is shipped content too, and the API serves it like the definitions.
PATHWAY_TYPES = frozenset({"PlanDefinition", "ActivityDefinition", "Library", "Questionnaire", "CodeSystem"})


def load_pathway_file(path: Path) -> dict[str, Any]:
    """Parse one file and validate it as R4; InvalidResource naming the file when it is not a pathway resource."""
    try:
        resource = jsonutil.loads_resource(path.read_bytes())
    except (OSError, InvalidRequest) as exc:
        raise InvalidResource(f"{path.name}: {exc}", expression=(path.name,)) from exc
    resource_type = resource["resourceType"]
    if resource_type not in PATHWAY_TYPES:
        raise InvalidResource(
            f"{path.name}: a pathway file holds one of {sorted(PATHWAY_TYPES)}, not {resource_type}",
            expression=(path.name,),
        )
    try:
        model_class(resource_type).model_validate(resource)
    except ValidationError as exc:
        raise InvalidResource(f"{path.name}: not a valid R4 {resource_type}: {exc}", expression=(path.name,)) from exc
    return resource  # the parsed JSON, not the model: re-serialising would change decimals


def load_pathway_files(directory: Path) -> list[dict[str, Any]]:
    """Every `*.json` in `directory` (sorted by name, not recursive), parsed with decimals kept as written."""
    if not directory.is_dir():
        raise InvalidResource(f"Pathway folder not found: {directory}", expression=(str(directory),))
    return [load_pathway_file(path) for path in sorted(directory.glob("*.json"))]

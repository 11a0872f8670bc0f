"""Which resource types carepath serves, and their R4 models (fhir.resources.R4B carries R4 content).

Every concrete R4 resource type is served except those the R4B validation models lack or redefine (e.g. the
MedicinalProduct* family) and Parameters (no RESTful endpoint in R4). The list, and why each other type is not
served, is `r4-resource-types.json` next to this module, built by scripts/build_search_parameters.py from HL7's
R4 core package and published in contracts/resource-types.json.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

_TYPES: dict[str, Any] = json.loads(resources.files(__package__).joinpath("r4-resource-types.json").read_text("utf-8"))

SUPPORTED_TYPES: tuple[str, ...] = tuple(_TYPES["supported"])
# R4 type -> why it is not served (answered in the 404 OperationOutcome).
UNSUPPORTED_TYPES: dict[str, str] = dict(_TYPES["unsupported"])
_SUPPORTED_SET = frozenset(SUPPORTED_TYPES)


def is_supported(resource_type: str) -> bool:
    return resource_type in _SUPPORTED_SET


def unsupported_reason(resource_type: str) -> str:
    """Why `resource_type` gets a 404, for the OperationOutcome."""
    reason = UNSUPPORTED_TYPES.get(resource_type)
    if reason is not None:
        return f"R4 resource type {resource_type!r} is not served: {reason}"
    return f"{resource_type!r} is not an R4 resource type"


@cache
def model_class(resource_type: str) -> Any:
    """The R4B pydantic class for a resource type (also for types we only read, e.g. Bundle)."""
    return get_fhir_model_class(resource_type)

"""`PlanDefinition/{id}/$data-requirements` (R4, PlanDefinition-data-requirements): what the pathway reads.

The derivation is the engine's pure `pathway_data_requirements` — the same one `$apply` uses to decide which
resource types of a patient's record to fetch — over the definitions `$apply` would load.
"""

from __future__ import annotations

from typing import Any

from carepath.engine.requirements import module_definition_library
from carepath.service.apply_definitions import stored_definitions
from carepath.store.repository import Repository


async def plan_data_requirements(repository: Repository, plan_id: str) -> dict[str, Any]:
    async with repository.reader() as tx:
        definitions = await stored_definitions(repository, tx, "PlanDefinition", plan_id)
    return module_definition_library(definitions.root, definitions.requirements)

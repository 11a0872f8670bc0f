"""The pure `$apply` engine: PlanDefinition / ActivityDefinition + patient data + `now` -> CarePlan and requests.

No I/O and no clock reads: definitions come through a `DefinitionResolver` (the caller pre-loads), time comes
in as `ApplyContext.now`. Expressions are FHIRPath only (see `expressions` for the context variables and for
how named variables and supplied parameters make thresholds configurable), timing arithmetic is in `timing`,
the output structure in `assemble`, persistence-ready Bundles in `bundle`.
"""

from carepath.engine.apply import apply_activity_definition, apply_plan_definition
from carepath.engine.bundle import to_transaction_bundle
from carepath.engine.context import ApplyContext, ApplyResult, DefinitionResolver, DictResolver, EvaluationBudget

__all__ = [
    "ApplyContext",
    "ApplyResult",
    "DefinitionResolver",
    "DictResolver",
    "EvaluationBudget",
    "apply_activity_definition",
    "apply_plan_definition",
    "to_transaction_bundle",
]

"""`$apply` entry points: PlanDefinition -> CarePlan, ActivityDefinition -> request. Pure: no I/O, no clock."""

from __future__ import annotations

from typing import Any

from carepath.engine.activity import build_request, set_interval
from carepath.engine.assemble import careplan
from carepath.engine.build import apply_dynamic_values, build_all
from carepath.engine.checks import check_generated
from carepath.engine.context import ApplyContext, ApplyResult, DefinitionResolver
from carepath.engine.expressions import Scope, refuse_unsupported
from carepath.engine.nodes import collect_plan
from carepath.engine.run import Run
from carepath.engine.timing import Interval, own_interval
from carepath.errors import BusinessRuleViolation, InvalidRequest


def _require(resource: dict[str, Any], resource_type: str) -> None:
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise InvalidRequest(f"Expected a {resource_type} resource")


def apply_plan_definition(plan: dict[str, Any], resolver: DefinitionResolver, ctx: ApplyContext) -> ApplyResult:
    """Apply a PlanDefinition for one subject: a CarePlan with everything generated contained."""
    _require(plan, "PlanDefinition")
    run = Run(ctx, resolver)
    top = collect_plan(run, plan, "PlanDefinition", owner=None, stack=(), option=False)
    nodes = build_all(run, top)
    result = careplan(run, top, nodes)
    check_generated(result, run.writes)
    return ApplyResult(result, applicable=bool(top.roots), issues=run.issues)


def apply_activity_definition(
    activity: dict[str, Any], resolver: DefinitionResolver, ctx: ApplyContext
) -> dict[str, Any]:
    """Apply an ActivityDefinition on its own (ActivityDefinition/$apply): the request resource, not contained."""
    _require(activity, "ActivityDefinition")
    refuse_unsupported(activity, "ActivityDefinition")
    run = Run(ctx, resolver)
    request = build_request(activity, ctx, intent="order", participants=[], where="ActivityDefinition")
    try:
        own = own_interval(activity, ctx.now, None, "ActivityDefinition")
    except OverflowError as exc:
        raise BusinessRuleViolation(
            "The timing leads out of the range of dates", expression=("ActivityDefinition",)
        ) from exc
    set_interval(request, own or Interval(ctx.now, None))
    scope = Scope.of(run.evaluator, None, activity, "ActivityDefinition")
    apply_dynamic_values(activity, scope, "ActivityDefinition", request, run.writes)
    check_generated(request, run.writes)
    return request

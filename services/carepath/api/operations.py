"""Operation routes ($apply, $data-requirements, Subscription $status and $resend).

Registered before the generic REST routes so `/{type}/{id}` does not catch them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from carepath.api.http import check_acceptable, idempotency_key, json_response, read_resource_body
from carepath.api.state import app_state
from carepath.errors import InvalidRequest, MethodNotAllowed
from carepath.service.apply import ApplyResponse, apply_activity, apply_plan
from carepath.service.data_requirements import plan_data_requirements
from carepath.service.interactions import check_id
from carepath.service.parameters import OperationInput, from_parameters, from_query
from carepath.service.subscriptions import resend, status_parameters

router = APIRouter(prefix="/fhir")


async def _inputs(request: Request) -> OperationInput:
    check_acceptable(request)
    if request.method == "GET":
        return from_query(list(request.query_params.multi_items()))
    return from_parameters(await read_resource_body(request, app_state(request).settings.max_request_bytes))


def _render(response: ApplyResponse) -> Response:
    return json_response(response.body, response.status)


async def _apply_plan(request: Request, plan_id: str | None) -> Response:
    inputs = await _inputs(request)
    if request.method == "GET" and inputs.boolean("persist", False):
        # R4 §3.1.0.1.1 (operations): an operation that changes state must be invoked with POST, never GET.
        raise MethodNotAllowed("persist=true stores resources: invoke $apply with POST")
    key, state = idempotency_key(request), app_state(request)
    limit = state.settings.apply_evaluation_limit_ms
    return _render(await apply_plan(state.repository, plan_id, inputs, idempotency_key=key, evaluation_limit_ms=limit))


@router.post("/PlanDefinition/$apply")
@router.get("/PlanDefinition/$apply")
async def plan_apply_type(request: Request) -> Response:
    return await _apply_plan(request, None)


@router.post("/PlanDefinition/{plan_id}/$apply")
@router.get("/PlanDefinition/{plan_id}/$apply")
async def plan_apply_instance(request: Request, plan_id: str) -> Response:
    return await _apply_plan(request, check_id(plan_id))


@router.post("/ActivityDefinition/$apply")
@router.get("/ActivityDefinition/$apply")
async def activity_apply_type(request: Request) -> Response:
    return await _apply_activity(request, None)


@router.post("/ActivityDefinition/{activity_id}/$apply")
@router.get("/ActivityDefinition/{activity_id}/$apply")
async def activity_apply(request: Request, activity_id: str) -> Response:
    return await _apply_activity(request, check_id(activity_id))


async def _apply_activity(request: Request, activity_id: str | None) -> Response:
    inputs, state = await _inputs(request), app_state(request)
    limit = state.settings.apply_evaluation_limit_ms
    return _render(await apply_activity(state.repository, activity_id, inputs, evaluation_limit_ms=limit))


@router.get("/PlanDefinition/{plan_id}/$data-requirements")
async def plan_data_requirements_route(request: Request, plan_id: str) -> Response:
    check_acceptable(request)
    return json_response(await plan_data_requirements(app_state(request).repository, check_id(plan_id)))


@router.get("/Subscription/{sub_id}/$status")
@router.post("/Subscription/{sub_id}/$status")
async def subscription_status(request: Request, sub_id: str) -> Response:
    check_acceptable(request)
    async with app_state(request).repository.reader() as tx:
        return json_response(await status_parameters(tx, check_id(sub_id)))


@router.post("/Subscription/{sub_id}/$resend")
async def subscription_resend(request: Request, sub_id: str) -> Response:
    """Re-send notifications numbered above `eventsSinceNumber` (without it: the dead-lettered ones)."""
    inputs = await _inputs(request) if request.headers.get("content-length", "0") != "0" else OperationInput()
    since = inputs.one("eventsSinceNumber")
    if since is not None and not (str(since).isdigit()):
        raise InvalidRequest("eventsSinceNumber must be a non-negative integer", expression=("Parameters.parameter",))
    async with app_state(request).repository.transaction() as tx:
        return json_response(await resend(tx, check_id(sub_id), int(since) if since is not None else None))

"""FHIR REST routes (R4 §3.1.0). Each route turns HTTP into an Interaction and renders the Outcome."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.convertors import StringConvertor, register_url_convertor

from carepath.api.http import (
    base_url,
    check_acceptable,
    json_response,
    prefer,
    read_form,
    read_patch_body,
    read_resource_body,
    render,
)
from carepath.api.state import app_state
from carepath.auth.discovery import rest_security
from carepath.errors import NotFound
from carepath.service.bundles import process_bundle
from carepath.service.capability import capability_statement, versions_parameters
from carepath.service.history import history_bundle
from carepath.service.interactions import (
    Interaction,
    check_id,
    check_type,
    execute_crud,
    parse_if_match,
)
from carepath.service.search import search_bundle
from carepath.service.transactions import run_in_transaction


class _TypeSegment(StringConvertor):
    """`{res_type:fhirtype}` matches resource-type-shaped segments only (R4 type names start upper-case), so
    `metadata`, `_history` and `$versions` are never taken for a type: `POST /fhir/metadata` is a 405, not 404."""

    regex = "[A-Z][A-Za-z0-9]*"


register_url_convertor("fhirtype", _TypeSegment())
router = APIRouter(prefix="/fhir")


def _id(res_id: str) -> str:
    if res_id.startswith("$"):
        raise NotFound(f"Unknown operation {res_id}")
    return check_id(res_id)


async def _crud(request: Request, it: Interaction) -> Response:
    check_acceptable(request)
    state = app_state(request)
    if it.kind in ("read", "vread"):
        async with state.repository.reader() as tx:
            outcome = await execute_crud(tx, it)
    else:
        outcome = await run_in_transaction(state.repository, lambda tx: execute_crud(tx, it))
    return render(outcome, request, base_url(request, state.settings.base_url))


async def _search(request: Request, res_type: str | None, query: list[tuple[str, str]]) -> Response:
    check_acceptable(request)
    state = app_state(request)
    strict = prefer(request, "handling") == "strict"
    async with state.repository.reader() as tx:
        bundle = await search_bundle(
            tx, res_type, query, base_url(request, state.settings.base_url), state.settings, strict=strict
        )
    return json_response(bundle)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    check_acceptable(request)
    settings = app_state(request).settings
    return json_response(capability_statement(base_url(request, settings.base_url), rest_security(settings)))


@router.get("/$versions")
async def versions(request: Request) -> Response:
    """R4's `$versions` operation: the FHIR versions served, and the default."""
    check_acceptable(request)
    return json_response(versions_parameters())


@router.post("")
async def batch_or_transaction(request: Request) -> Response:
    check_acceptable(request)
    state = app_state(request)
    body = await read_resource_body(request, state.settings.max_request_bytes)
    bundle = await process_bundle(
        state.repository, body, base_url(request, state.settings.base_url),
        strict_search=prefer(request, "handling") == "strict", max_entries=state.settings.max_bundle_entries,
    )  # fmt: skip
    return json_response(bundle)


@router.get("/_history")
async def history_system(request: Request) -> Response:
    return await _history(request, None, None)


async def _history(request: Request, res_type: str | None, res_id: str | None) -> Response:
    check_acceptable(request)
    state = app_state(request)
    async with state.repository.reader() as tx:
        bundle = await history_bundle(
            tx,
            res_type,
            res_id,
            list(request.query_params.multi_items()),
            base_url(request, state.settings.base_url),
            state.settings,
        )
    return json_response(bundle)


@router.get("/{res_type:fhirtype}")
async def search_type(request: Request, res_type: str) -> Response:
    return await _search(request, check_type(res_type), list(request.query_params.multi_items()))


@router.post("/{res_type:fhirtype}/_search")
async def search_post(request: Request, res_type: str) -> Response:
    check_type(res_type)
    form = await read_form(request, app_state(request).settings.max_request_bytes)
    query = list(request.query_params.multi_items()) + form
    return await _search(request, res_type, query)


@router.post("/{res_type:fhirtype}")
async def create(request: Request, res_type: str) -> Response:
    check_type(res_type)
    body = await read_resource_body(request, app_state(request).settings.max_request_bytes)
    it = Interaction("create", res_type, body=body, if_none_exist=request.headers.get("if-none-exist"))
    return await _crud(request, it)


@router.get("/{res_type:fhirtype}/_history")
async def history_type(request: Request, res_type: str) -> Response:
    return await _history(request, check_type(res_type), None)


@router.get("/{res_type:fhirtype}/{res_id}")
async def read(request: Request, res_type: str, res_id: str) -> Response:
    return await _crud(request, Interaction("read", check_type(res_type), _id(res_id)))


@router.put("/{res_type:fhirtype}/{res_id}")
async def update(request: Request, res_type: str, res_id: str) -> Response:
    check_type(res_type)
    body = await read_resource_body(request, app_state(request).settings.max_request_bytes)
    it = Interaction(
        "update", res_type, _id(res_id), body=body, if_match=parse_if_match(request.headers.get("if-match"))
    )
    return await _crud(request, it)


@router.patch("/{res_type:fhirtype}/{res_id}")
async def patch(request: Request, res_type: str, res_id: str) -> Response:
    check_type(res_type)
    body = await read_patch_body(request, app_state(request).settings.max_request_bytes)
    if_match = parse_if_match(request.headers.get("if-match"))
    it = Interaction("patch", res_type, _id(res_id), patch=body, if_match=if_match)
    return await _crud(request, it)


@router.put("/{res_type:fhirtype}")
async def conditional_update(request: Request, res_type: str) -> Response:
    check_type(res_type)
    body = await read_resource_body(request, app_state(request).settings.max_request_bytes)
    it = Interaction("update", res_type, body=body, query=_criteria(request),
                     if_match=parse_if_match(request.headers.get("if-match")))  # fmt: skip
    return await _crud(request, it)


@router.patch("/{res_type:fhirtype}")
async def conditional_patch(request: Request, res_type: str) -> Response:
    check_type(res_type)
    body = await read_patch_body(request, app_state(request).settings.max_request_bytes)
    it = Interaction("patch", res_type, patch=body, query=_criteria(request),
                     if_match=parse_if_match(request.headers.get("if-match")))  # fmt: skip
    return await _crud(request, it)


@router.delete("/{res_type:fhirtype}")
async def conditional_delete(request: Request, res_type: str) -> Response:
    return await _crud(request, Interaction("delete", check_type(res_type), query=_criteria(request)))


def _criteria(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


@router.delete("/{res_type:fhirtype}/{res_id}")
async def delete(request: Request, res_type: str, res_id: str) -> Response:
    return await _crud(request, Interaction("delete", check_type(res_type), _id(res_id)))


@router.get("/{res_type:fhirtype}/{res_id}/_history")
async def history_instance(request: Request, res_type: str, res_id: str) -> Response:
    return await _history(request, check_type(res_type), _id(res_id))


@router.get("/{res_type:fhirtype}/{res_id}/_history/{version}")
async def vread(request: Request, res_type: str, res_id: str, version: str) -> Response:
    if not (version.isascii() and version.isdigit()):
        raise NotFound(f"Version {version!r} does not exist")
    return await _crud(request, Interaction("vread", check_type(res_type), _id(res_id), int(version)))

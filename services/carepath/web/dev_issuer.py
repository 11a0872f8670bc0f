"""The development issuer's endpoints (`CAREPATH_AUTH=dev` only; 404 otherwise): discovery, JWKS, an authorize
page to pick one of the stored Practitioners, and the token endpoint. The logic is `auth.dev_issuer`'s.

The authorize form carries the request it answers; posting it needs no session (there is none yet) and gives
nothing to a forger: the code goes to this server's own callback, which accepts it only with the `state` of the
browser's own sign-in (its pending cookie).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from carepath.auth.dev_issuer import BASE, DEV_CLIENT_ID, AuthorizationRequest, DevIssuer, TokenRequestRefused
from carepath.errors import CarepathError, InvalidRequest, NotFound
from carepath.web import data
from carepath.web.data import MANY
from carepath.web.routes import Page, callback_url
from carepath.web.views.fhir import practitioner_name

router = APIRouter(prefix=BASE, include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749 §5.1


def _issuer(request: Request) -> DevIssuer:
    app: FastAPI = request.app
    settings = app.state.carepath.settings
    if settings.auth != "dev":
        raise NotFound("No development issuer outside CAREPATH_AUTH=dev")
    if not hasattr(app.state, "carepath_dev_issuer"):
        client_id = settings.app_oidc_client_id or DEV_CLIENT_ID
        app.state.carepath_dev_issuer = DevIssuer(settings.data_dir, app.state.carepath_sessions.secret, client_id)
    issuer: DevIssuer = app.state.carepath_dev_issuer
    return issuer


def _published(request: Request, document: Callable[[DevIssuer], dict[str, Any]]) -> Response:
    try:
        return JSONResponse(document(_issuer(request)))
    except NotFound:
        return Response(status_code=404)


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    return _published(request, DevIssuer.discovery)


@router.get("/jwks")
async def jwks(request: Request) -> Response:
    return _published(request, DevIssuer.jwks)


@router.get("/authorize")
async def authorize_page(request: Request) -> Response:
    page = Page(request)
    try:
        issuer = _issuer(request)
        asked = AuthorizationRequest.parse(dict(request.query_params), issuer.client_id, callback_url(request))
        async with page.state.repository.reader() as tx:
            found, _, _ = await data.search_resources(tx, page.state.settings, "Practitioner", [("_count", str(MANY))])
    except CarepathError as error:
        return page.refuse(error)
    people = sorted(((str(p["id"]), practitioner_name(p) or str(p["id"])) for p in found), key=lambda p: p[1])
    return page.render("dev_authorize.html", asked=asked, practitioners=people)


@router.post("/authorize")
async def authorize(request: Request) -> Response:
    page = Page(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        issuer = _issuer(request)
        asked = AuthorizationRequest.parse(form, issuer.client_id, callback_url(request))
        chosen = form.get("practitioner", "")
        async with page.state.repository.reader() as tx:
            practitioner = (await tx.read("Practitioner", chosen)).json() if chosen else None
        if practitioner is None:
            raise InvalidRequest("Choose a practitioner to sign in as")
    except CarepathError as error:
        return page.refuse(error)
    code = issuer.code(asked, user=f"Practitioner/{chosen}", name=practitioner_name(practitioner) or chosen,
                       scope=form.get("granted", asked.scope), patient=form.get("patient", "").strip())  # fmt: skip
    back = f"{asked.redirect_uri}{'&' if '?' in asked.redirect_uri else '?'}"
    return page.finish(RedirectResponse(back + urlencode({"code": code, "state": asked.state}), status_code=303))


@router.post("/token")
async def token(request: Request) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        answer = _issuer(request).redeem(form)
    except NotFound:
        return Response(status_code=404)
    except TokenRequestRefused as refused:
        return JSONResponse({"error": refused.error, "error_description": str(refused)}, 400, headers=_NO_STORE)
    return JSONResponse(answer, headers=_NO_STORE)

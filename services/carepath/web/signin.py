"""Sign-in to the worklist: `/app/login` sends the browser to the issuer, `/app/callback` brings it back signed in.

The flow itself (PKCE, state, nonce, token checks) is `auth.oidc`'s; here it meets the browser: the pending
sign-in rides a short-lived signed cookie, and the session starts with the user's `fhirUser`, name and grants.
In `dev` mode the issuer is carepath's own (`web.dev_issuer`), reached in-process for the back channel; with
auth `off` there is nothing to sign in to (the fixed development user).
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from carepath.auth.config import LOCAL_BASE, build_oidc
from carepath.auth.oidc import OidcClient, Pending
from carepath.auth.scopes import scope_text
from carepath.errors import CarepathError, SignInFailed
from carepath.web.routes import Page, callback_url, local_target
from carepath.web.session import PENDING_COOKIE, PENDING_MAX_AGE_S
from carepath.web.views.actions import Actor

router = APIRouter(prefix="/app", include_in_schema=False)


def _oidc(app: FastAPI) -> OidcClient | None:
    """Built on first use: the security runtime's verifier and HTTP client are the API's."""
    if not hasattr(app.state, "carepath_oidc"):
        security = app.state.security

        def local() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL_BASE)

        app.state.carepath_oidc = build_oidc(app.state.carepath.settings, security.client, security.verifier, local)
    oidc: OidcClient | None = app.state.carepath_oidc
    return oidc


@router.get("/login")
async def login(request: Request) -> Response:
    page = Page(request)
    target = local_target(request.query_params.get("next"))
    if page.dev_mode:  # auth off: everyone is the development user already
        return page.finish(RedirectResponse(target, status_code=303))
    oidc = _oidc(request.app)
    if oidc is None:
        return page.render("error.html", status=503, message=page.t("signin.not_configured"))
    pending = Pending.new(target)
    try:
        url = await oidc.authorize_url(pending, callback_url(request))
    except CarepathError as error:
        return page.refuse(error)
    response = page.finish(RedirectResponse(url, status_code=303))
    response.set_cookie(PENDING_COOKIE, page.sessions.dump_pending(pending), max_age=PENDING_MAX_AGE_S, path="/app",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")  # fmt: skip
    return response


@router.get("/callback")
async def callback(request: Request) -> Response:
    """The issuer's redirect back (RFC 6749 §4.1.2): a code and our state, or an error."""
    page = Page(request)
    oidc = _oidc(request.app)
    pending = page.sessions.load_pending(request.cookies.get(PENDING_COOKIE))
    query = request.query_params
    try:
        if oidc is None or page.dev_mode:
            raise SignInFailed("Sign-in is not in use on this server")
        if pending is None:
            raise SignInFailed("The sign-in took too long or was started in another browser; try again")
        if "error" in query or not query.get("code"):
            raise SignInFailed(f"The issuer did not sign you in ({query.get('error', 'no code')})")
        signed = await oidc.finish(pending, state=query.get("state", ""), code=query["code"],
                                   redirect_uri=callback_url(request))  # fmt: skip
    except SignInFailed as failed:
        # the page's link back to the worklist starts a new sign-in
        response = page.render("error.html", status=401, heading=page.t("signin.failed"), message=str(failed))
    except CarepathError as error:
        response = page.refuse(error)
    else:
        principal = signed.principal
        page.session = page.sessions.new(Actor(signed.user, signed.name), scope_text(principal.grants),
                                         principal.patient)  # fmt: skip
        response = page.finish(RedirectResponse(pending.next, status_code=303))
    response.delete_cookie(PENDING_COOKIE, path="/app")  # one sign-in, one use
    return response

"""Signing in to the worklist in tests: through carepath's own development issuer (dev mode), or against an
external OpenID provider played by respx (jwt mode) — respx stands in for the issuer only, never for carepath."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import respx
from tests.integration.auth_support import ISSUER, SigningKey, jwks, jwt_settings, token

from carepath.auth.oidc import s256
from carepath.settings import Settings

CLIENT_ID = "carepath-app"
COORDINATOR_SCOPE = "openid fhirUser user/*.rs user/Task.u"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html[:500]
    return match.group(1)


async def dev_sign_in(
    http: httpx.AsyncClient, practitioner: str, granted: str | None = None, patient: str = "", next_url: str = "/app"
) -> httpx.Response:
    """The whole dev-mode flow as a browser makes it; answers the callback's response (303 to `next_url`)."""
    http.cookies.clear()
    login = await http.get("/app/login", params={"next": next_url})
    assert login.status_code == 303, login.text
    location = login.headers["location"]
    assert location.startswith("/app/dev-issuer/authorize?"), location
    asked = dict(parse_qsl(urlsplit(location).query))
    page = await http.get(location)
    assert page.status_code == 200 and f'value="{practitioner}"' in page.text, page.text[:500]
    form = {**asked, "practitioner": practitioner, "granted": asked["scope"] if granted is None else granted,
            "patient": patient}  # fmt: skip
    back = await http.post("/app/dev-issuer/authorize", data=form)
    assert back.status_code == 303, back.text
    return await http.get(back.headers["location"])


def oidc_settings(tmp_path: Path, key: SigningKey, **overrides: Any) -> Settings:
    """jwt mode whose keys are the issuer's JWKS URL (respx answers it), with the worklist's client id."""
    values: dict[str, Any] = {"auth_jwks_file": None, "auth_jwks_url": f"{ISSUER}/jwks",
                              "app_oidc_client_id": CLIENT_ID, "auth_failure_limit": 1_000_000}  # fmt: skip
    return jwt_settings(tmp_path, key, **{**values, **overrides})


@dataclass
class FakeIssuer:
    """The external issuer: discovery, JWKS and a token endpoint that checks the code, PKCE verifier and
    redirect URI it was given, and answers an access token and an ID token (claims overridable)."""

    key: SigningKey
    scope: str = COORDINATOR_SCOPE
    fhir_user: str = "Practitioner/dr1"
    id_claims: dict[str, Any] = field(default_factory=dict)
    signer: SigningKey | None = None  # another key to sign the ID token with (a forgery)
    asked: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    code: str = "the-code"

    def install(self, router: respx.Router) -> None:
        discovery = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize",
                     "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks"}  # fmt: skip
        router.get(f"{ISSUER}/.well-known/openid-configuration").respond(json=discovery)
        router.get(f"{ISSUER}/jwks").respond(json=jwks(self.key))
        router.post(f"{ISSUER}/token").mock(side_effect=self._token)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.token_requests.append(form)
        if (form.get("code") != self.code or form.get("grant_type") != "authorization_code"
                or s256(form.get("code_verifier", "")) != self.asked.get("code_challenge")
                or form.get("redirect_uri") != self.asked.get("redirect_uri")):  # fmt: skip
            return httpx.Response(400, json={"error": "invalid_grant"})
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "user-42", "fhirUser": self.fhir_user,
                  "name": "Claire Idec", "nonce": self.asked["nonce"], "iat": now, "exp": now + 300,
                  **self.id_claims}  # fmt: skip
        signer = self.signer or self.key
        id_token = jwt.encode({k: v for k, v in claims.items() if v is not None}, signer.private, algorithm=signer.alg,
                              headers={"kid": self.key.kid})  # fmt: skip
        access = token(self.key, self.scope, sub="user-42", client_id=CLIENT_ID, fhirUser=self.fhir_user)
        return httpx.Response(200, json={"access_token": access, "token_type": "Bearer", "id_token": id_token,
                                         "scope": self.scope})  # fmt: skip

    async def sign_in(self, http: httpx.AsyncClient, next_url: str = "/app", code: str | None = None) -> httpx.Response:
        """/app/login, then the issuer's redirect back to the callback with its code (or `code`, one it never
        issued); the callback's answer."""
        http.cookies.clear()
        login = await http.get("/app/login", params={"next": next_url})
        assert login.status_code == 303, login.text
        location = urlsplit(login.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
        self.asked = dict(parse_qsl(location.query))
        return await http.get("/app/callback", params={"code": code or self.code, "state": self.asked["state"]})

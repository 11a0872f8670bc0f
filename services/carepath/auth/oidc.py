"""The worklist's sign-in as an OpenID Connect relying party: the authorization code flow with PKCE.

Discovery (OpenID Connect Discovery 1.0 §4) gives the endpoints. The browser is sent to the authorization
endpoint with `state`, `nonce` and an S256 `code_challenge` (RFC 7636 §4.2); the code it brings back is exchanged
with the `code_verifier` (RFC 6749 §4.1.3). The ID token is checked as OIDC Core §3.1.3.7 says (signature by the
issuer's JWKS, `iss`, `aud` = our client id, `exp`, `nonce`), and the access token by the API's own verifier, so a
session holds exactly the grants a bearer token would have: the pages decide with the API's rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from carepath.auth.keys import FETCH_TIMEOUT_S, RemoteKeys
from carepath.auth.tokens import Principal, TokenVerifier, signed_claims
from carepath.errors import IssuerUnavailable, SignInFailed, Unauthorized


@dataclass(frozen=True)
class Pending:
    """What the browser carries from the login redirect to the callback (in a short-lived signed cookie)."""

    state: str
    nonce: str
    verifier: str  # the PKCE code_verifier: 64 base64url characters (RFC 7636 §4.1 allows 43-128)
    next: str = "/app"

    @classmethod
    def new(cls, next_url: str = "/app") -> Pending:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_url)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SignedIn:
    user: str  # "Practitioner/<id>", from the `fhirUser` claim
    name: str
    principal: Principal  # the access token's grants and patient context


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str


class OidcClient:
    def __init__(
        self, http: httpx.AsyncClient, verifier: TokenVerifier, *, discovery_url: str, issuer: str, client_id: str,
        client_secret: str = "", scope: str, leeway_s: int = 30,
    ) -> None:  # fmt: skip
        self._http = http
        self._verifier = verifier
        self._discovery_url = discovery_url
        self._issuer = issuer
        self.client_id = client_id
        self._auth = httpx.BasicAuth(client_id, client_secret) if client_secret else None
        self._scope = scope
        self._leeway = leeway_s
        self._endpoints: Endpoints | None = None
        self._keys: RemoteKeys | None = None

    async def endpoints(self) -> Endpoints:
        """From the discovery document, fetched once it answers well (a failure is tried again next time)."""
        if self._endpoints is None:
            document = await self._json(self._http.get(self._discovery_url, timeout=FETCH_TIMEOUT_S))
            if document.get("issuer") != self._issuer:
                raise IssuerUnavailable("The discovery document names another issuer")
            try:
                # The authorization endpoint is where the browser goes: kept as given (the dev issuer gives a
                # path, which the browser resolves against this server); the back-channel ones are resolved here.
                found = Endpoints(str(document["authorization_endpoint"]),
                                  urljoin(self._discovery_url, str(document["token_endpoint"])),
                                  urljoin(self._discovery_url, str(document["jwks_uri"])))  # fmt: skip
            except KeyError as missing:
                raise IssuerUnavailable(f"The discovery document has no {missing}") from None
            self._keys = RemoteKeys(found.jwks, self._http)
            self._endpoints = found
        return self._endpoints

    async def authorize_url(self, pending: Pending, redirect_uri: str) -> str:
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "scope": self._scope, "state": pending.state, "nonce": pending.nonce,
                 "code_challenge": s256(pending.verifier), "code_challenge_method": "S256"}  # fmt: skip
        authorization = (await self.endpoints()).authorization
        return f"{authorization}{'&' if '?' in authorization else '?'}{urlencode(query)}"

    async def finish(self, pending: Pending, *, state: str, code: str, redirect_uri: str) -> SignedIn:
        """The callback's work: state checked, code exchanged, ID and access tokens verified."""
        if not state or not hmac.compare_digest(state, pending.state):
            raise SignInFailed("The sign-in response does not belong to this browser's sign-in (state)")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": pending.verifier, "client_id": self.client_id}  # fmt: skip
        token_url = (await self.endpoints()).token
        auth = self._auth or httpx.USE_CLIENT_DEFAULT
        sent = self._http.post(token_url, data=form, timeout=FETCH_TIMEOUT_S, auth=auth)
        answer = await self._json(sent, refused_ok=True)
        access, id_token = answer.get("access_token"), answer.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise SignInFailed(f"The issuer refused the code ({answer.get('error', 'no tokens')})")
        claims = await self._id_claims(id_token, pending.nonce)
        try:
            principal = await self._verifier.verify(access)
        except Unauthorized:
            raise SignInFailed("The issuer's access token is not accepted by this server") from None
        user = practitioner(claims.get("fhirUser")) or practitioner(principal.fhir_user)
        if user is None:
            raise SignInFailed("The sign-in names no Practitioner (fhirUser claim)")
        name = claims.get("name")
        return SignedIn(user, name if isinstance(name, str) and name else user, principal)

    async def _id_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        await self.endpoints()
        assert self._keys is not None
        claims = await signed_claims(id_token, self._keys, audience=self.client_id, issuer=self._issuer,
                                     leeway_s=self._leeway, require=("exp", "iat", "iss", "aud", "sub"))  # fmt: skip
        if claims is None:
            raise SignInFailed("The ID token is not signed by the issuer, or is invalid or expired")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInFailed("The ID token was not issued for this sign-in (nonce)")
        return claims

    @staticmethod
    async def _json(call: Any, refused_ok: bool = False) -> dict[str, Any]:
        """The JSON object an issuer answered; a token endpoint's 400 (RFC 6749 §5.2) is an answer too."""
        try:
            response: httpx.Response = await call
            if not (refused_ok and response.status_code == 400):
                response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerUnavailable(f"The sign-in issuer did not answer ({type(exc).__name__})") from None
        if not isinstance(document, dict):
            raise IssuerUnavailable("The sign-in issuer answered something other than a JSON object")
        return document


def practitioner(value: Any) -> str | None:
    """`Practitioner/<id>` from a fhirUser claim (relative, or an absolute URL ending so)."""
    if not isinstance(value, str):
        return None
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Practitioner" and parts[-1]:
        return f"Practitioner/{parts[-1]}"
    return None

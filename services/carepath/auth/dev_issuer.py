"""`CAREPATH_AUTH=dev`: a tiny OpenID provider served by carepath itself, so the worklist's sign-in runs the real
code flow (authorize, code, token exchange with PKCE, ID token) without an external issuer.

Its authorize page lets whoever opens it pick a stored Practitioner — a development convenience without a
password, like `carepath dev-token`, and served only in dev mode (which listens on loopback only). Codes are
signed rather than stored, live `CODE_TTL_S` and are redeemed once per process; the tokens are signed by the
local development key (`auth.dev`), so the access token is what the dev-mode API verifier accepts.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jwt
from itsdangerous import BadSignature, URLSafeTimedSerializer

from carepath.auth.dev import DEV_ISSUER, DEV_KID, dev_jwks, dev_private_key, dev_token
from carepath.auth.oidc import s256
from carepath.errors import InvalidRequest

BASE = "/app/dev-issuer"
DEV_CLIENT_ID = "carepath-app"
CODE_TTL_S = 60
ID_TOKEN_TTL_S = 300
_REMEMBERED = 10_000  # redeemed codes kept (they expire after CODE_TTL_S anyway)


class TokenRequestRefused(Exception):
    """RFC 6749 §5.2: answered 400 with `error` (e.g. invalid_grant) and a description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    challenge: str

    @classmethod
    def parse(cls, query: Mapping[str, str], client_id: str, callback: str) -> AuthorizationRequest:
        """Only what the worklist sends: a code request for our client, with an S256 challenge, back to
        `callback` (this server's /app/callback on the host the browser used: never an open redirect)."""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise InvalidRequest("response_type=code with code_challenge_method=S256 is required")
        if query.get("client_id") != client_id or not query.get("code_challenge") or not query.get("state"):
            raise InvalidRequest("client_id, state and code_challenge are required")
        redirect = query.get("redirect_uri", "")
        if redirect != callback:
            raise InvalidRequest("redirect_uri must be this server's /app/callback")
        return cls(client_id, redirect, query.get("scope", ""), query["state"], query.get("nonce", ""),
                   query["code_challenge"])  # fmt: skip


class DevIssuer:
    def __init__(self, data_dir: Path, secret: str, client_id: str) -> None:
        self._data_dir = data_dir
        self._codes = URLSafeTimedSerializer(secret, salt="carepath-dev-issuer-code")
        self.client_id = client_id
        self._redeemed: OrderedDict[str, None] = OrderedDict()

    def discovery(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §3; the endpoints are paths of this server."""
        return {"issuer": DEV_ISSUER, "authorization_endpoint": f"{BASE}/authorize",
                "token_endpoint": f"{BASE}/token", "jwks_uri": f"{BASE}/jwks", "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"], "code_challenge_methods_supported": ["S256"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["none"]}  # fmt: skip

    def jwks(self) -> dict[str, Any]:
        return dev_jwks(self._data_dir)

    def code(self, request: AuthorizationRequest, *, user: str, name: str, scope: str, patient: str = "") -> str:
        """`patient`: a launch context, as an EHR launch would give (the session then sees that patient only)."""
        return str(self._codes.dumps({**asdict(request), "user": user, "name": name, "granted": scope,
                                      "patient": patient, "jti": uuid.uuid4().hex}))  # fmt: skip

    def redeem(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The token endpoint (RFC 6749 §4.1.3 + RFC 7636 §4.6): the code, once, with its verifier."""
        if form.get("grant_type") != "authorization_code":
            raise TokenRequestRefused("unsupported_grant_type", "only authorization_code")
        try:
            code: dict[str, Any] = self._codes.loads(form.get("code", ""), max_age=CODE_TTL_S)
        except BadSignature:
            raise TokenRequestRefused("invalid_grant", "unknown or expired code") from None
        verifier = form.get("code_verifier", "")
        if (form.get("client_id") != code["client_id"] or form.get("redirect_uri") != code["redirect_uri"]
                or not hmac.compare_digest(s256(verifier), code["challenge"])):  # fmt: skip
            raise TokenRequestRefused("invalid_grant", "client_id, redirect_uri or code_verifier does not match")
        if code["jti"] in self._redeemed:
            raise TokenRequestRefused("invalid_grant", "the code was already used")
        self._redeemed[code["jti"]] = None
        while len(self._redeemed) > _REMEMBERED:
            self._redeemed.popitem(last=False)
        return {"token_type": "Bearer", "expires_in": 3600, "scope": code["granted"],
                "access_token": dev_token(self._data_dir, scope=code["granted"], fhir_user=code["user"],
                                          patient=code["patient"] or None),
                "id_token": self._id_token(code)}  # fmt: skip

    def _id_token(self, code: Mapping[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": DEV_ISSUER, "aud": code["client_id"], "sub": code["user"], "fhirUser": code["user"],
                  "name": code["name"], "nonce": code["nonce"], "iat": now, "exp": now + ID_TOKEN_TTL_S}  # fmt: skip
        return jwt.encode(claims, dev_private_key(self._data_dir), algorithm="ES256", headers={"kid": DEV_KID})

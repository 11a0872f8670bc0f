"""SMART Backend Services (HL7 SMART App Launch 2.x, "Backend Services"): an access token for the hospital's FHIR
server by `client_credentials` with a `private_key_jwt` client assertion signed RS384 (RSA key) or ES384 (EC key),
cached until shortly before it expires; `invalidate` after a 401 forces a new one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from carepath.settings import Settings
from carepath.store.records import utc_now

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME = timedelta(minutes=5)  # the spec's upper bound for `exp`
_EARLY = timedelta(seconds=60)  # renew this long before expiry: a token must not lapse in flight


class TokenError(Exception):
    """The token endpoint refused or did not answer; the push is retried later."""


class TokenSource:
    def __init__(self, settings: Settings, client: httpx.AsyncClient, clock: Callable[[], datetime] = utc_now):
        self.settings, self.client, self.clock = settings, client, clock
        self._token: str | None = None
        self._expires = datetime.min
        self._key: Any = None

    def _signing_key(self) -> tuple[Any, str]:
        if self._key is None:
            self._key = load_pem_private_key(Path(self.settings.ehr_private_key_file).read_bytes(), password=None)
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key, "RS384"
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key, "ES384"
        raise TokenError("CAREPATH_EHR_PRIVATE_KEY_FILE must hold an RSA or EC private key (RS384 / ES384)")

    def assertion(self) -> str:
        key, alg = self._signing_key()
        now, s = self.clock(), self.settings
        claims = {"iss": s.ehr_client_id, "sub": s.ehr_client_id, "aud": s.ehr_token_url, "jti": str(uuid.uuid4()),
                  "iat": int(_epoch(now)), "exp": int(_epoch(now + _ASSERTION_LIFETIME))}  # fmt: skip
        headers = {"typ": "JWT", **({"kid": s.ehr_key_id} if s.ehr_key_id else {})}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    async def token(self) -> str:
        if self._token is not None and self.clock() < self._expires - _EARLY:
            return self._token
        form = {"grant_type": "client_credentials", "scope": self.settings.ehr_scope,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion()}  # fmt: skip
        try:
            response = await self.client.post(self.settings.ehr_token_url, data=form,
                                              timeout=self.settings.delivery_timeout_ms / 1000)  # fmt: skip
        except httpx.HTTPError as exc:
            raise TokenError(f"token endpoint: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise TokenError(f"token endpoint answered {response.status_code}")
        try:
            answer = response.json()
            token, lifetime = str(answer["access_token"]), int(answer.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("token endpoint: no access_token in its answer") from exc
        self._token, self._expires = token, self.clock() + timedelta(seconds=lifetime)
        return token

    def invalidate(self) -> None:
        self._token = None


def _epoch(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()

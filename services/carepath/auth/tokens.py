"""Access-token verification for a SMART resource server: local JWT checks, or RFC 7662 introspection.

JWTs are verified with PyJWT against an explicit list of asymmetric algorithms; `none` and HS* never reach a
key (an attacker who signs HS256 with our public key as the secret gets 401, whatever form the key has).
Opaque tokens (not three dot-separated parts) go to the introspection endpoint; its answers are cached until the
token's `exp`. Every failure is the same `Unauthorized` with a bland message: detail helps an attacker only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt

from carepath.auth.scopes import Grant, parse_scopes
from carepath.errors import Unauthorized

log = logging.getLogger("carepath.auth")

ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
_INVALID = "The access token is invalid or expired"
_CACHE_SIZE = 10_000  # tokens remembered (verified JWTs, introspection answers), oldest dropped first


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says."""

    subject: str  # `sub`, else `client_id`
    client_id: str
    issuer: str
    grants: frozenset[Grant]
    patient: str | None = None  # the launch context of patient/ scopes
    fhir_user: str | None = None  # "Practitioner/123" for user/ scopes

    @classmethod
    def from_claims(cls, claims: dict[str, Any], issuer: str) -> Principal:
        client_id = _text(claims.get("client_id")) or _text(claims.get("azp")) or _text(claims.get("sub")) or "?"
        scope = claims.get("scope", claims.get("scp"))
        if isinstance(scope, list):  # some issuers send arrays (`scp`)
            scope = " ".join(str(s) for s in scope)
        return cls(
            subject=_text(claims.get("sub")) or client_id,
            client_id=client_id,
            issuer=issuer,
            grants=parse_scopes(scope if isinstance(scope, str) else ""),
            patient=_text(claims.get("patient")),
            fhir_user=_text(claims.get("fhirUser")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class KeySource(Protocol):
    async def key(self, kid: str | None) -> jwt.PyJWK | None: ...


class _VerifiedCache:
    """Tokens already verified (or introspected), by digest, until their `exp`: a client sends the same token on
    every call, and an ES384 signature check costs ~0.6 ms on this machine against a few µs for the digest and
    the look-up. A JWT is self-contained, so re-verifying it before `exp` could not reach another answer."""

    def __init__(self, leeway_s: int) -> None:
        self._leeway = leeway_s
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()  # the token itself is never kept

    def get(self, key: bytes) -> Principal | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] + self._leeway <= time.time():
            del self._entries[key]
            return None
        return found[1]

    def put(self, key: bytes, expires: float, principal: Principal) -> None:
        self._entries[key] = (expires, principal)
        while len(self._entries) > _CACHE_SIZE:
            self._entries.popitem(last=False)


class _Verifier:
    """A token check whose answers are remembered until the token's `exp`."""

    def __init__(self, *, issuer: str, audience: str, leeway_s: int) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._verified = _VerifiedCache(leeway_s)

    async def verify(self, token: str) -> Principal:
        key = self._verified.key(token)
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        principal, expires = await self._check(token)
        self._verified.put(key, expires, principal)
        return principal

    async def _check(self, token: str) -> tuple[Principal, float]:
        raise NotImplementedError


class JwtVerifier(_Verifier):
    def __init__(self, keys: KeySource, *, issuer: str, audience: str, leeway_s: int) -> None:
        super().__init__(issuer=issuer, audience=audience, leeway_s=leeway_s)
        self._keys = keys

    async def _check(self, token: str) -> tuple[Principal, float]:
        claims = await signed_claims(token, self._keys, audience=self._audience, issuer=self._issuer,
                                     leeway_s=self._leeway, require=("exp", "iss", "aud"))  # fmt: skip
        if claims is None:
            raise Unauthorized(_INVALID)
        return Principal.from_claims(claims, self._issuer), float(claims["exp"])


async def signed_claims(
    token: str, keys: KeySource, *, audience: str, issuer: str, leeway_s: int, require: tuple[str, ...]
) -> dict[str, Any] | None:
    """The claims of a JWT signed by one of `keys` with an allowed algorithm, for `audience` from `issuer`; None
    for anything else. The algorithm is checked first: `none` and HS* never reach a key, nor trigger a JWKS fetch."""
    try:
        header = jwt.get_unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            return None
        key = await keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=[alg], audience=audience, issuer=issuer,
                                            leeway=leeway_s, options={"require": list(require)})  # fmt: skip
    except jwt.PyJWTError:
        return None
    return claims


class Introspector(_Verifier):
    """RFC 7662: POST token=... with carepath's own client credentials; active answers cached until `exp`."""

    def __init__(
        self, url: str, client: httpx.AsyncClient, *, issuer: str, audience: str, leeway_s: int,
        client_id: str = "", client_secret: str = "",
    ) -> None:  # fmt: skip
        super().__init__(issuer=issuer, audience=audience, leeway_s=leeway_s)
        self._url = url
        self._client = client
        self._auth = httpx.BasicAuth(client_id, client_secret) if client_id else None

    async def _check(self, token: str) -> tuple[Principal, float]:
        now = time.time()
        claims = await self._introspect(token)
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + self._leeway <= now:
            raise Unauthorized(_INVALID)
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - self._leeway > now:
            raise Unauthorized(_INVALID)
        if claims.get("iss") not in (None, self._issuer) or not _audience_ok(claims.get("aud"), self._audience):
            raise Unauthorized(_INVALID)
        return Principal.from_claims(claims, self._issuer), float(exp)

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self._client.post(
                self._url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
                timeout=5.0,
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("token introspection failed (%s)", type(exc).__name__)
            raise Unauthorized(_INVALID) from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise Unauthorized(_INVALID)
        return claims


def _audience_ok(aud: Any, expected: str) -> bool:
    if aud is None:  # RFC 7662 makes aud optional; the introspection endpoint answered for this resource server
        return True
    return aud == expected or (isinstance(aud, list) and expected in aud)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class TokenVerifier:
    """JWTs locally when keys are configured, anything else (or everything, without keys) by introspection."""

    def __init__(self, jwt_verifier: JwtVerifier | None, introspector: Introspector | None) -> None:
        self._jwt = jwt_verifier
        self._introspector = introspector

    async def verify(self, token: str) -> Principal:
        if self._jwt is not None and (looks_like_jwt(token) or self._introspector is None):
            return await self._jwt.verify(token)
        if self._introspector is not None:
            return await self._introspector.verify(token)
        raise Unauthorized(_INVALID)

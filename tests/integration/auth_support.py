"""Keys, JWKS and tokens made at test time (no private key is ever committed), and jwt-mode settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from carepath.settings import Settings

MakeClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
ISSUER = "https://auth.example.test"
AUDIENCE = "https://carepath.example.test/fhir"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @property
    def public_jwk(self) -> dict[str, Any]:
        family = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = family.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str = "rsa-1", alg: str = "RS384") -> SigningKey:
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1", alg: str = "ES384") -> SigningKey:
    return SigningKey(kid, alg, ec.generate_private_key(ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()))


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


def claims(scope: str = "system/*.cruds", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "engine-1", "client_id": "engine-1",
                            "scope": scope, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}  # fmt: skip
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(key: SigningKey, scope: str = "system/*.cruds", *, kid: str | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(scope, **overrides), key.private, algorithm=key.alg, headers={"kid": kid or key.kid})


def unsigned(scope: str = "system/*.cruds", kid: str = "rsa-1") -> str:
    """alg=none, as an attacker would write it by hand."""
    head = _b64({"alg": "none", "typ": "JWT", "kid": kid})
    return f"{head}.{_b64(claims(scope))}."


def hs256_forgery(secret: bytes, kid: str, scope: str = "system/*.cruds") -> str:
    """HS256 "signed" with the public key as the HMAC secret (the classic algorithm-confusion attack)."""
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = _b64(claims(scope))
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def jwt_settings(tmp_path: Path, *keys: SigningKey, **overrides: Any) -> Settings:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(*keys)))
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'carepath.sqlite'}", "load_pathways_on_start": False,
        "base_url": "http://testserver/fhir", "auth": "jwt", "auth_issuer": ISSUER, "auth_audience": AUDIENCE,
        "auth_jwks_file": path, "auth_token_url": f"{ISSUER}/token",
    }  # fmt: skip
    values.update(overrides)
    return Settings(**values)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}

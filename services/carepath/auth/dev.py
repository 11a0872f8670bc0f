"""`CAREPATH_AUTH=dev`: tokens signed by a local development key, so the secured mode can be tried in a minute.

The key (ES256) is created on first use under the data folder, readable by its owner only. A dev token is a
real JWT checked by the same verifier as `jwt` mode, only with a fixed issuer and audience and this key.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from carepath.auth.keys import StaticKeys, parse_jwks

DEV_ISSUER = "urn:carepath:dev"
DEV_AUDIENCE = "urn:carepath:dev"
DEV_KID = "carepath-dev"
DEV_CLIENT = "carepath-dev-token"
DEFAULT_SCOPE = "system/*.cruds"
_KEY_FILE = "dev-auth-key.pem"


def dev_private_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    path = data_dir / _KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # O_EXCL: two first uses at once must not write two keys; the loser reads the winner's.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


def dev_jwks(data_dir: Path) -> dict[str, Any]:
    """The public half of the dev key as a JWKS document."""
    public = ECAlgorithm.to_jwk(dev_private_key(data_dir).public_key(), as_dict=True)
    return {"keys": [{**public, "kid": DEV_KID, "use": "sig", "alg": "ES256"}]}


def dev_keys(data_dir: Path) -> StaticKeys:
    return StaticKeys(parse_jwks(dev_jwks(data_dir)))


def dev_token(
    data_dir: Path, *, scope: str = DEFAULT_SCOPE, patient: str | None = None, fhir_user: str | None = None,
    lifetime_s: int = 3600, now: float | None = None,
) -> str:  # fmt: skip
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": DEV_CLIENT, "client_id": DEV_CLIENT, "scope": scope,
        "iat": issued, "nbf": issued, "exp": issued + lifetime_s, "jti": str(uuid.uuid4()),
    }  # fmt: skip
    if patient:
        claims["patient"] = patient
    if fhir_user:
        claims["fhirUser"] = fhir_user
    return jwt.encode(claims, dev_private_key(data_dir), algorithm="ES256", headers={"kid": DEV_KID})

"""Auth benchmark: token verification with cached keys, and what jwt mode and the audit trail add per request.

Run: python bench/bench_auth.py [requests]   (in-process, no network; keys generated at run time)

(1) `JwtVerifier.verify`, keys cached (a JWKS file), per algorithm: the median of 20 batches of 200 distinct
    tokens, per token — each first seen (signature checked), then again (remembered until `exp`).
(2) A FHIR read and a create through the ASGI app (httpx.ASGITransport, SQLite in a temporary folder), one client,
    in three modes: `off`; `jwt` with audit off; `jwt` with audit on. Median wall time per request, and the
    process's CPU time per request including the audit trail's batched writes (the steadier figure on a shared
    machine: waiting for the CPU is not counted).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from carepath.api.app import create_app
from carepath.auth.keys import StaticKeys, parse_jwks
from carepath.auth.tokens import JwtVerifier
from carepath.settings import Settings

ISSUER, AUDIENCE = "https://auth.bench", "https://carepath.bench/fhir"


def _key(alg: str) -> Any:
    if alg.startswith("RS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())


def _jwk(alg: str, private: Any) -> dict[str, Any]:
    family = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
    return {**family.to_jwk(private.public_key(), as_dict=True), "kid": alg, "use": "sig", "alg": alg}


def _token(alg: str, private: Any, scope: str = "system/*.cruds") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "client_id": "bench", "scope": scope,
              "exp": now + 3600, "jti": str(uuid.uuid4())}  # fmt: skip
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": alg})


async def verification() -> dict[str, tuple[float, float]]:
    """alg -> (ms for a token seen for the first time, ms for a token already verified), keys cached."""
    out = {}
    for alg in ("RS256", "RS384", "ES256", "ES384"):
        private = _key(alg)
        verifier = JwtVerifier(StaticKeys(parse_jwks({"keys": [_jwk(alg, private)]})), issuer=ISSUER,
                               audience=AUDIENCE, leeway_s=30)  # fmt: skip
        fresh, again = [], []
        for _ in range(20):
            tokens = [_token(alg, private) for _ in range(200)]
            start = time.perf_counter()
            for token in tokens:
                await verifier.verify(token)
            fresh.append((time.perf_counter() - start) / 200)
            start = time.perf_counter()
            for token in tokens:
                await verifier.verify(token)
            again.append((time.perf_counter() - start) / 200)
        out[alg] = (statistics.median(fresh) * 1000, statistics.median(again) * 1000)
    return out


async def requests(mode: str, count: int, folder: Path) -> dict[str, float]:
    private = _key("ES256")
    jwks = folder / f"jwks-{mode}.json"
    jwks.write_text(json.dumps({"keys": [_jwk("ES256", private)]}))
    secured = mode != "off"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / f'{mode}.sqlite'}", load_pathways_on_start=False,
        auth="jwt" if secured else "off", auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=jwks,
        audit=mode == "jwt+audit",
    )  # fmt: skip
    headers = {"Content-Type": "application/fhir+json"}
    if secured:
        headers["Authorization"] = f"Bearer {_token('ES256', private)}"
    app = create_app(settings)
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Bench"}]}
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "subject": {"reference": "Patient/p1"}}  # fmt: skip
    out: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            assert (await http.put("/fhir/Patient/p1", json=patient, headers=headers)).status_code == 201
            calls = {
                "read": lambda: http.get("/fhir/Patient/p1", headers=headers),
                "create": lambda: http.post("/fhir/Observation", json=observation, headers=headers),
            }
            for name, call in calls.items():
                times = []
                cpu = time.process_time()
                for _ in range(count):
                    start = time.perf_counter()
                    answer = await call()
                    times.append(time.perf_counter() - start)
                    assert answer.status_code < 300, answer.text
                await app.state.security.trail.flush()  # the audit's deferred writes belong to these requests
                out[f"{name} cpu"] = (time.process_time() - cpu) / count * 1000
                times.sort()
                out[f"{name} p50"] = statistics.median(times) * 1000
    return out


async def main(count: int) -> None:
    print("token verification, cached keys (ms per token): first time / already verified")
    for alg, (fresh, again) in (await verification()).items():
        print(f"  {alg}: {fresh:.3f} / {again:.4f}")
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("off", "jwt", "jwt+audit"):
            figures = await requests(mode, count, Path(folder))
            print(f"{mode:10s} " + "  ".join(f"{k} {v:.2f} ms" for k, v in figures.items()))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

"""The issuer's signing keys: a JWKS from a file, or from a URL fetched with httpx and cached.

An unknown `kid` may mean the issuer rotated its keys, so it triggers a refetch — at most once per
`REFETCH_INTERVAL_S`, so a stream of forged kids cannot turn carepath into a load generator against the issuer.
A failed or malformed fetch keeps the last good key set. All fetching is async: nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

log = logging.getLogger("carepath.auth")

REFETCH_INTERVAL_S = 60.0
FETCH_TIMEOUT_S = 5.0


def parse_jwks(document: Any) -> dict[str, PyJWK]:
    """kid -> key of the usable public signing keys in a JWKS document (others are skipped, not fatal)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a 'keys' array")
    keys: dict[str, PyJWK] = {}
    for raw in document["keys"]:
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or raw.get("kty") not in ("RSA", "EC"):
            continue  # symmetric ("oct") keys are never accepted: HS* is refused whatever the key looks like
        if "d" in raw:
            continue  # a private key published by mistake is not a verification key
        try:
            key = PyJWKSet.from_dict({"keys": [raw]}).keys[0]
        except (PyJWKError, PyJWKSetError):
            continue
        keys[str(raw.get("kid", ""))] = key
    return keys


class StaticKeys:
    """A key set known up front (CAREPATH_AUTH_JWKS_FILE, or the dev key)."""

    def __init__(self, keys: dict[str, PyJWK]) -> None:
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> StaticKeys:
        return cls(parse_jwks(json.loads(path.read_text(encoding="utf-8"))))

    async def key(self, kid: str | None) -> PyJWK | None:
        return _pick(self._keys, kid)


class RemoteKeys:
    """A JWKS at a URL, fetched on first use and on an unknown kid (rate-limited), last good set kept."""

    def __init__(self, url: str, client: httpx.AsyncClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._client = client
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK | None:
        found = _pick(self._keys, kid)
        if found is not None:
            return found
        async with self._lock:  # concurrent requests with the same new kid share one fetch
            found = _pick(self._keys, kid)
            if found is None and self._may_fetch():
                await self._fetch()
                found = _pick(self._keys, kid)
        return found

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= REFETCH_INTERVAL_S

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        try:
            response = await self._client.get(self._url, timeout=FETCH_TIMEOUT_S)
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed (%s); keeping the last good key set", self._url, type(exc).__name__)
            return
        if not keys:
            log.warning("JWKS at %s has no usable signing key; keeping the last good key set", self._url)
            return
        self._keys = keys


def _pick(keys: dict[str, PyJWK], kid: str | None) -> PyJWK | None:
    if kid is not None:
        return keys.get(kid)
    # No kid in the header: unambiguous only when the set has a single key.
    return next(iter(keys.values())) if len(keys) == 1 else None

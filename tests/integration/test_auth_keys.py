"""JWKS from a URL (rotation, the refetch limit, the last good key set) and RFC 7662 introspection, with respx
standing in for the authorization server — the only external peer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import respx
from tests.integration.auth_support import (
    AUDIENCE,
    ISSUER,
    MakeClient,
    bearer,
    ec_key,
    jwks,
    jwt_settings,
    rsa_key,
    token,
)

from carepath.auth.keys import REFETCH_INTERVAL_S, RemoteKeys, StaticKeys, parse_jwks
from carepath.auth.tokens import Introspector, JwtVerifier
from carepath.errors import Unauthorized

JWKS_URL = "https://auth.example.test/jwks"
INTROSPECT_URL = "https://auth.example.test/introspect"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(client: httpx.AsyncClient, clock: Clock) -> JwtVerifier:
    return JwtVerifier(RemoteKeys(JWKS_URL, client, clock=clock), issuer=ISSUER, audience=AUDIENCE, leeway_s=30)


@respx.mock
async def test_rotation_is_picked_up_on_an_unknown_kid_at_most_once_a_minute() -> None:
    old, new = rsa_key("old"), ec_key("new")
    route = respx.get(JWKS_URL).mock(return_value=httpx.Response(200, json=jwks(old)))
    clock = Clock()
    async with httpx.AsyncClient() as client:
        check = verifier(client, clock)
        assert (await check.verify(token(old))).client_id == "engine-1"
        assert route.call_count == 1
        route.mock(return_value=httpx.Response(200, json=jwks(new)))  # the issuer rotates
        clock.now += 10
        with pytest.raises(Unauthorized):  # unknown kid, but the last fetch was 10 s ago: no refetch
            await check.verify(token(new))
        with pytest.raises(Unauthorized):  # a stream of unknown kids does not hammer the issuer
            for n in range(20):
                await check.verify(token(new, kid=f"forged-{n}"))
        assert route.call_count == 1
        clock.now += REFETCH_INTERVAL_S
        assert (await check.verify(token(new))).client_id == "engine-1"
        assert route.call_count == 2
        with pytest.raises(Unauthorized):  # the old key is gone, and no second fetch within the minute
            await check.verify(token(old))
        assert route.call_count == 2


@respx.mock
async def test_a_failed_or_empty_fetch_keeps_the_last_good_key_set() -> None:
    key = rsa_key("k1")
    route = respx.get(JWKS_URL).mock(return_value=httpx.Response(200, json=jwks(key)))
    clock = Clock()
    async with httpx.AsyncClient() as client:
        check = verifier(client, clock)
        await check.verify(token(key))
        for answer in (httpx.Response(503), httpx.Response(200, json={"keys": []}), httpx.Response(200, text="<html>")):
            route.mock(return_value=answer)
            clock.now += REFETCH_INTERVAL_S
            with pytest.raises(Unauthorized):
                await check.verify(token(key, kid="k2"))  # triggers a refetch, which fails
            assert (await check.verify(token(key))).subject == "engine-1"  # k1 still known
        assert route.call_count == 4


@respx.mock
async def test_symmetric_and_private_keys_in_the_jwks_are_ignored() -> None:
    key = rsa_key("k1")
    hmac_key = {"kty": "oct", "kid": "k1", "k": "c2VjcmV0", "alg": "HS256"}
    respx.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [hmac_key]}))
    async with httpx.AsyncClient() as client:
        with pytest.raises(Unauthorized):
            await verifier(client, Clock()).verify(token(key))


async def test_jwt_mode_with_a_jwks_url_end_to_end(tmp_path: Path, make_client: MakeClient) -> None:
    key = ec_key("e1", "ES384")
    settings = jwt_settings(tmp_path, key, auth_jwks_file=None, auth_jwks_url=JWKS_URL, audit=False)
    with respx.mock(assert_all_mocked=False) as mock:
        route = mock.get(JWKS_URL).mock(return_value=httpx.Response(200, json=jwks(key)))
        async with make_client(settings) as http:
            for _ in range(3):
                assert (await http.get("/fhir/Patient", headers=bearer(token(key)))).status_code == 200
            assert (await http.get("/fhir/Patient", headers=bearer(token(rsa_key("x"))))).status_code == 401
        assert route.call_count == 1  # cached; the unknown kid came within the minute


def introspector(client: httpx.AsyncClient) -> Introspector:
    return Introspector(INTROSPECT_URL, client, issuer=ISSUER, audience=AUDIENCE, leeway_s=30,
                        client_id="carepath", client_secret="s3cret")  # fmt: skip


@respx.mock
async def test_opaque_tokens_are_introspected_and_cached_until_exp() -> None:
    exp = int(time.time()) + 300
    answer = {"active": True, "scope": "system/Patient.rs", "client_id": "engine-9", "exp": exp, "iss": ISSUER}
    route = respx.post(INTROSPECT_URL).mock(return_value=httpx.Response(200, json=answer))
    async with httpx.AsyncClient() as client:
        check = introspector(client)
        first = await check.verify("opaque-abc")
        second = await check.verify("opaque-abc")
    assert first == second and first.client_id == "engine-9"
    assert {(g.res_type, g.letter) for g in first.grants} == {("Patient", "r"), ("Patient", "s")}
    assert route.call_count == 1
    request = route.calls[0].request
    assert request.headers["authorization"].startswith("Basic ")  # carepath authenticates itself
    assert b"token=opaque-abc" in request.content


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        {"active": True, "scope": "system/*.rs", "exp": int(time.time()) - 120},
        {"active": True, "scope": "system/*.rs"},  # no exp: cannot be cached safely, refused
        {"active": True, "scope": "system/*.rs", "exp": int(time.time()) + 60, "iss": "https://evil"},
        {"active": True, "scope": "system/*.rs", "exp": int(time.time()) + 60, "aud": "https://other"},
        {"active": "true", "scope": "system/*.rs", "exp": int(time.time()) + 60},
    ],
)
async def test_introspection_refusals(answer: dict[str, object]) -> None:
    respx.post(INTROSPECT_URL).mock(return_value=httpx.Response(200, json=answer))
    async with httpx.AsyncClient() as client:
        with pytest.raises(Unauthorized):
            await introspector(client).verify("opaque-xyz")


@respx.mock
async def test_an_unreachable_introspection_endpoint_is_a_401_not_a_500() -> None:
    respx.post(INTROSPECT_URL).mock(side_effect=httpx.ConnectError("down"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(Unauthorized):
            await introspector(client).verify("opaque-xyz")


async def test_introspection_through_the_api(tmp_path: Path, make_client: MakeClient) -> None:
    settings = jwt_settings(
        tmp_path, rsa_key(), auth_jwks_file=None, auth_introspection_url=INTROSPECT_URL, audit=False
    )
    answer = {"active": True, "scope": "system/Patient.rs", "client_id": "engine-9", "exp": int(time.time()) + 60}
    with respx.mock(assert_all_mocked=False) as mock:
        mock.post(INTROSPECT_URL).mock(return_value=httpx.Response(200, json=answer))
        async with make_client(settings) as http:
            assert (await http.get("/fhir/Patient", headers=bearer("opaque-1"))).status_code == 200
            assert (await http.get("/fhir/Observation", headers=bearer("opaque-1"))).status_code == 403


async def test_a_verified_token_is_remembered_until_exp_only() -> None:
    key = rsa_key("k1")
    fetches = 0

    class Counting:
        async def key(self, kid: str | None) -> object:
            nonlocal fetches
            fetches += 1
            return (await StaticKeys(parse_jwks(jwks(key))).key(kid)) if kid == "k1" else None

    check = JwtVerifier(Counting(), issuer=ISSUER, audience=AUDIENCE, leeway_s=0)  # type: ignore[arg-type]
    same = token(key)
    assert await check.verify(same) == await check.verify(same)
    assert fetches == 1  # the second call did not verify again
    soon = token(key, exp=int(time.time()) + 1)
    await check.verify(soon)
    await asyncio.sleep(1.1)
    with pytest.raises(Unauthorized):
        await check.verify(soon)  # expired while cached: verified afresh, and refused

"""`CAREPATH_AUTH=dev` with `carepath dev-token`, SMART discovery, rest.security, and the hardening headers."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from tests.integration.auth_support import MakeClient, bearer, jwt_settings, rsa_key, token

from carepath.cli import main
from carepath.settings import Settings, get_settings


def dev_settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite'}", data_dir=tmp_path / "data",
                    load_pathways_on_start=False, auth="dev", **extra)  # fmt: skip


def cli_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setenv("CAREPATH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        assert main(["dev-token", *args]) == 0
    finally:
        get_settings.cache_clear()
    return capsys.readouterr().out.strip()


async def test_dev_token_is_accepted_by_a_dev_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make_client: MakeClient
) -> None:
    full = cli_token(tmp_path, monkeypatch, capsys)
    key_file = tmp_path / "data" / "dev-auth-key.pem"
    assert key_file.is_file() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    reader = cli_token(tmp_path, monkeypatch, capsys, "--scope", "patient/*.rs", "--patient", "p1")
    async with make_client(dev_settings(tmp_path)) as http:
        assert (await http.get("/fhir/Patient")).status_code == 401
        writer = {**bearer(full), "Content-Type": "application/fhir+json"}
        created = await http.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}, headers=writer)
        assert created.status_code == 201
        assert (await http.get("/fhir/Patient/p1", headers=bearer(reader))).status_code == 200
        assert (await http.delete("/fhir/Patient/p1", headers=bearer(reader))).status_code == 403
        # A token from another key (or a jwt-mode issuer) is not a dev token.
        assert (await http.get("/fhir/Patient/p1", headers=bearer(token(rsa_key())))).status_code == 401


async def test_smart_configuration_is_open_and_complete(tmp_path: Path, make_client: MakeClient) -> None:
    async with make_client(jwt_settings(tmp_path, rsa_key(), audit=False)) as http:
        answer = await http.get("/fhir/.well-known/smart-configuration")
        metadata = await http.get("/fhir/metadata")
    assert answer.status_code == 200
    config = answer.json()
    assert config["token_endpoint"] == "https://auth.example.test/token"
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(config["capabilities"])
    assert "system/*.rs" in config["scopes_supported"]
    assert metadata.status_code == 200
    security = metadata.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth["extension"] == [{"url": "token", "valueUri": "https://auth.example.test/token"}]


async def test_every_answer_is_hardened(tmp_path: Path, make_client: MakeClient) -> None:
    async with make_client(jwt_settings(tmp_path, rsa_key(), audit=False)) as http:
        answers = {
            "data": await http.get("/fhir/Patient", headers=bearer("x")),
            "metadata": await http.get("/fhir/metadata"),
            "docs": await http.get("/docs"),
            "health": await http.get("/healthz"),
        }
    for name, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", name
        assert "server" not in answer.headers, name
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], name
    assert answers["data"].headers["cache-control"] == "no-store"
    assert "no-store" not in answers["metadata"].headers.get("cache-control", "")
    assert answers["docs"].status_code == 200 and "script-src" in answers["docs"].headers["content-security-policy"]
    assert "access-control-allow-origin" not in answers["metadata"].headers  # CORS off by default


async def test_docs_can_be_switched_off(tmp_path: Path, make_client: MakeClient) -> None:
    async with make_client(jwt_settings(tmp_path, rsa_key(), audit=False, docs=False)) as http:
        assert (await http.get("/docs")).status_code in (401, 404)
        assert (await http.get("/openapi.json")).status_code in (401, 404)


async def test_cors_only_for_listed_origins(tmp_path: Path, make_client: MakeClient) -> None:
    origin = "https://worklist.example.test"
    async with make_client(jwt_settings(tmp_path, rsa_key(), audit=False, cors_origins=origin)) as http:
        preflight = {"Origin": origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "Authorization"}  # fmt: skip
        allowed = await http.options("/fhir/Patient", headers=preflight)
        other = await http.options("/fhir/Patient", headers={**preflight, "Origin": "https://evil.example.test"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers

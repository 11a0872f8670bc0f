"""Auth modes at start-up (issue 8 "auth mode", issue 13 "Modes"): no configured mode is silently open."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from carepath.auth.config import InsecureBind, check_bind, is_loopback
from carepath.cli import main
from carepath.settings import Settings, get_settings


def test_token_mode_is_refused_naming_jwt() -> None:
    with pytest.raises(ValidationError, match="use CAREPATH_AUTH=jwt"):
        Settings(auth="token")


@pytest.mark.parametrize("mode", ["bearer", "on", "OFF", ""])
def test_unknown_modes_are_refused(mode: str) -> None:
    with pytest.raises(ValidationError, match="not implemented"):
        Settings(auth=mode)


def test_jwt_mode_needs_issuer_audience_and_keys() -> None:
    with pytest.raises(ValidationError, match=r"CAREPATH_AUTH_ISSUER.*CAREPATH_AUTH_AUDIENCE.*JWKS"):
        Settings(auth="jwt")
    Settings(auth="jwt", auth_issuer="https://as", auth_audience="https://rs", auth_jwks_url="https://as/jwks")


def test_leeway_is_at_most_60_seconds() -> None:
    assert Settings().auth_leeway_s == 30
    with pytest.raises(ValidationError):
        Settings(auth_leeway_s=61)


def test_serve_refuses_token_mode_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CAREPATH_AUTH", "token")
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}")
    get_settings.cache_clear()
    try:
        assert main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    assert "CAREPATH_AUTH=jwt" in capsys.readouterr().err
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("mode", ["off", "dev"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "carepath.example.org"])
def test_off_and_dev_refuse_a_non_loopback_bind(mode: str, host: str) -> None:
    with pytest.raises(InsecureBind, match="CAREPATH_ALLOW_INSECURE_BIND"):
        check_bind(Settings(auth=mode), host)
    check_bind(Settings(auth=mode, allow_insecure_bind=True), host)  # explicit: allowed


def test_jwt_mode_may_bind_anywhere() -> None:
    check_bind(Settings(auth="jwt", auth_issuer="i", auth_audience="a", auth_jwks_url="https://as/jwks"), "0.0.0.0")


def test_serve_refuses_an_insecure_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}")
    get_settings.cache_clear()
    try:
        assert main(["serve", "--host", "0.0.0.0"]) == 2
    finally:
        get_settings.cache_clear()
    assert "refuses to listen on 0.0.0.0" in capsys.readouterr().err


def test_docker_compose_allows_the_container_bind_explicitly() -> None:
    compose = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    assert 'CAREPATH_ALLOW_INSECURE_BIND: "1"' in compose

"""Command-line guard rails that need no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from carepath.cli import main
from carepath.settings import get_settings


def test_several_workers_on_sqlite_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}")
    get_settings.cache_clear()
    try:
        assert main(["serve", "--workers", "2"]) == 2
    finally:
        get_settings.cache_clear()
    assert "needs PostgreSQL" in capsys.readouterr().err
    assert not (tmp_path / "x.sqlite").exists()  # refused before touching the database

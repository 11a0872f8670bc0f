"""`carepath demo` on the embedded default shows one completion releasing the Task that waited for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from carepath.demo import run_demo
from carepath.settings import Settings

PATHWAYS = Path(__file__).resolve().parents[2] / "pathways"


async def test_the_demo_releases_a_held_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite'}", pathways_dir=PATHWAYS)
    assert await run_demo(settings) == 0
    out = capsys.readouterr().out
    assert "Workflow: Patient/P01, 'RCP / tumour board review' waits for 1 Task(s)." in out
    assert "completed 'Reassess performance status (ECOG or Karnofsky)' (requested -> in-progress -> completed)" in out
    assert "'RCP / tumour board review': draft -> requested (released" in out

"""The pathways ship inside the package, so `carepath serve` started anywhere serves them; a configured pathways
folder that does not exist stops start-up with a message instead of silently loading nothing."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from carepath.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_packaged_copy_equals_the_repository_source() -> None:
    packaged = Path(str(resources.files("carepath").joinpath("pathways")))
    assert _files(packaged) == _files(REPO / "pathways")
    assert "plandefinition-chemo-failure-follow-up.json" in _files(packaged)


def test_unset_pathways_dir_means_the_packaged_copy_from_any_directory(tmp_path: Path) -> None:
    code = "from carepath.settings import Settings; print(Settings().effective_pathways_dir)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PATH": "", "HOME": str(tmp_path)})  # fmt: skip
    folder = Path(out.stdout.strip())
    assert folder.is_absolute() and (folder / "plandefinition-chemo-failure-follow-up.json").is_file()


def test_a_configured_folder_that_does_not_exist_fails_loudly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-pathways"
    with pytest.raises(FileNotFoundError, match="no-such-pathways"):
        _ = Settings(pathways_dir=missing).effective_pathways_dir
    assert Settings(pathways_dir=tmp_path).effective_pathways_dir == tmp_path


def test_the_cli_refuses_to_start_on_a_missing_pathways_folder(tmp_path: Path) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "CAREPATH_PATHWAYS_DIR": str(tmp_path / "typo"),
           "CAREPATH_DATA_DIR": str(tmp_path)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "carepath.cli", "pathways", "load"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "typo" in done.stderr and "is not a folder" in done.stderr

"""The one settings object. Every knob is an environment variable with the CAREPATH_ prefix."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREPATH_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///<file> or postgresql+asyncpg://...; "
        "empty = a SQLite file under data_dir",
    )
    database_schema: str = Field(default="", description="PostgreSQL schema (search_path); empty = the default")
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Folder for the embedded SQLite database")
    redis_url: str = Field(default="", description="Redis URL; empty = in-process substitute (fakeredis)")
    auth: Literal["off", "token"] = Field(default="off", description="off is for local development only")
    max_request_bytes: int = Field(default=5 * 1024 * 1024, description="Largest accepted request body")
    base_url: str = Field(default="", description="Public base URL of the FHIR API; empty = from the request")
    default_page_size: int = 20
    max_page_size: int = 500
    pathways_dir: Path | None = Field(
        default=None, description="PlanDefinitions loaded at start-up; empty = the pathways shipped in the package"
    )
    load_pathways_on_start: bool = True
    migrate_on_start: bool = Field(default=True, description="apply schema migrations when the API starts")
    log_level: str = "INFO"
    timezone: str = Field(default="Europe/Paris", description="the hospital's time zone: what 'overdue' and 'today' "
                          "mean on the worklist (an IANA name)")  # fmt: skip
    app_session_secret: str = Field(
        default="",
        description="signs the worklist's session cookie; empty = a random secret per process "
        "(sessions end at restart; set it with several workers)",
    )
    app_session_idle_minutes: int = Field(default=30, ge=1, description="worklist session idle timeout")

    @property
    def effective_pathways_dir(self) -> Path:
        """The configured pathways folder, which must exist (a typo must not silently start a server with no
        pathway), or else the copy of the repository's `pathways/` shipped inside the package."""
        if self.pathways_dir is None:
            return Path(str(resources.files("carepath").joinpath("pathways")))
        if not self.pathways_dir.is_dir():
            absolute = self.pathways_dir.resolve()
            raise FileNotFoundError(f"CAREPATH_PATHWAYS_DIR={self.pathways_dir} is not a folder ({absolute}); "
                                    "unset it to use the shipped pathways")  # fmt: skip
        return self.pathways_dir

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'carepath.sqlite').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""The one settings object. Every knob is an environment variable with the CAREPATH_ prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
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
    auth: Literal["off", "jwt", "dev"] = Field(
        default="off",
        description="off: no authentication (local development only); jwt: SMART access tokens from the issuer; "
        "dev: tokens from `carepath dev-token` (local development key)",
    )
    allow_insecure_bind: bool = Field(
        default=False, description="let auth off/dev listen on a non-loopback address (containers only)"
    )
    auth_issuer: str = Field(default="", description="jwt: the authorization server's `iss`")
    auth_audience: str = Field(default="", description="jwt: the `aud` access tokens must name (this server)")
    auth_jwks_url: str = Field(default="", description="jwt: the issuer's JWKS URL (fetched, cached)")
    auth_jwks_file: Path | None = Field(default=None, description="jwt: a local JWKS file instead of the URL")
    auth_introspection_url: str = Field(default="", description="RFC 7662 endpoint for opaque access tokens")
    auth_introspection_client_id: str = Field(default="", description="carepath's client id at introspection")
    auth_introspection_client_secret: str = Field(default="", description="its secret (HTTP Basic)")
    auth_token_url: str = Field(default="", description="the issuer's token endpoint, advertised to clients")
    auth_leeway_s: int = Field(default=30, ge=0, le=60, description="clock skew allowed on exp/nbf (seconds)")
    auth_failure_limit: int = Field(default=30, ge=1, description="failed authentications per client address/min")
    audit: bool | None = Field(default=None, description="record AuditEvents; empty = on unless auth is off")
    rate_limit_per_second: int = Field(
        default=0, ge=0, description="requests per client per second (0 = unlimited; put a proxy limit in front)"
    )
    max_bundle_entries: int = Field(default=1000, ge=1, description="most entries in a batch/transaction")
    docs: bool = Field(default=True, description="serve /docs and /openapi.json")
    cors_origins: str = Field(default="", description="comma-separated origins allowed by CORS; empty = CORS off")
    max_request_bytes: int = Field(default=5 * 1024 * 1024, description="Largest accepted request body")
    base_url: str = Field(default="", description="Public base URL of the FHIR API; empty = from the request")
    default_page_size: int = 20
    max_page_size: int = 500
    pathways_dir: Path = Field(default=Path("pathways"), description="PlanDefinitions loaded at start-up")
    load_pathways_on_start: bool = True
    migrate_on_start: bool = Field(default=True, description="apply schema migrations when the API starts")
    log_level: str = "INFO"

    @field_validator("auth", mode="before")
    @classmethod
    def _known_mode(cls, value: object) -> object:
        # `token` was once accepted and protected nothing (issue 8): refuse it by name instead of a generic error.
        if value == "token":
            raise ValueError("CAREPATH_AUTH=token is not a mode; use CAREPATH_AUTH=jwt (SMART access tokens)")
        if value not in ("off", "jwt", "dev"):
            raise ValueError(f"CAREPATH_AUTH={value!r} is not implemented; use off, jwt or dev")
        return value

    @model_validator(mode="after")
    def _jwt_complete(self) -> Settings:
        if self.auth == "jwt":
            missing = [
                name
                for name, value in (
                    ("CAREPATH_AUTH_ISSUER", self.auth_issuer),
                    ("CAREPATH_AUTH_AUDIENCE", self.auth_audience),
                )
                if not value
            ]
            if not (self.auth_jwks_url or self.auth_jwks_file or self.auth_introspection_url):
                missing.append("CAREPATH_AUTH_JWKS_URL, CAREPATH_AUTH_JWKS_FILE or CAREPATH_AUTH_INTROSPECTION_URL")
            if missing:
                raise ValueError(f"CAREPATH_AUTH=jwt needs {', '.join(missing)}")
        return self

    @property
    def audit_enabled(self) -> bool:
        return self.audit if self.audit is not None else self.auth != "off"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'carepath.sqlite').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

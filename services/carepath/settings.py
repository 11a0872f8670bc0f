"""The one settings object. Every knob is an environment variable with the CAREPATH_ prefix."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
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
    apply_evaluation_limit_ms: int = Field(
        default=2000, ge=1, description="FHIRPath evaluation time one $apply may spend (422 too-costly over it)"
    )
    max_bundle_entries: int = Field(default=1000, ge=1, description="most entries in a batch/transaction")
    docs: bool = Field(default=True, description="serve /docs and /openapi.json")
    cors_origins: str = Field(default="", description="comma-separated origins allowed by CORS; empty = CORS off")
    max_request_bytes: int = Field(default=5 * 1024 * 1024, description="Largest accepted request body")
    base_url: str = Field(default="", description="Public base URL of the FHIR API; empty = from the request")
    default_page_size: int = 20
    max_page_size: int = 500
    pathways_dir: Path | None = Field(
        default=None, description="PlanDefinitions loaded at start-up; empty = the pathways shipped in the package"
    )
    load_pathways_on_start: bool = True
    migrate_on_start: bool = Field(default=True, description="apply schema migrations when the API starts")
    scheduler_interval_s: float = Field(
        default=60, gt=0, description="Seconds between two scans of the scheduler (overdue Tasks)"
    )
    log_level: str = "INFO"
    # -- events (Redis Streams; contracts/events/) ------------------------------------------------------------
    events_inbound_stream: str = Field(default="carepath:inbound", description="CloudEvents in")
    events_outbound_stream: str = Field(default="carepath:events", description="CloudEvents out (the outbox relay)")
    events_dead_stream: str = Field(default="carepath:inbound:dead", description="dead letters of the inbound stream")
    events_group: str = Field(default="carepath", description="consumer group on the inbound stream")
    events_inbound_shards: int = Field(
        default=1, ge=1, le=1024,
        description="inbound streams (shards); 1 = the single stream above; more: <stream>:{0} ... <stream>:{N-1}, "
        "an event on shard crc32(patient) mod N (events/shards.py); change it only with the streams drained",
    )  # fmt: skip
    events_source: str = Field(default="urn:carepath", description="CloudEvents source of outbound events")
    events_allowed_sources: str = Field(
        default="", description="comma-separated CloudEvents sources accepted inbound; empty = any (warned at start)"
    )
    events_claim_idle_ms: int = Field(default=30000, description="reclaim entries idle this long (XAUTOCLAIM)")
    events_max_attempts: int = Field(default=5, description="transient failures before an entry is dead-lettered")
    events_retry_base_ms: int = Field(default=200, description="first retry delay, doubled each attempt")
    events_block_ms: int = Field(default=1000, description="XREADGROUP block time (real Redis)")
    events_poll_ms: int = Field(default=100, description="idle poll interval of relay and embedded consumer")
    events_batch: int = Field(default=64, description="entries read, or outbox rows relayed, per round")
    events_concurrency: int = Field(default=4, description="patients processed in parallel by one consumer")
    events_outbound_maxlen: int = Field(default=100000, description="approximate MAXLEN of the outbound stream")
    events_embedded: bool = Field(default=True, description="without redis_url, serve runs consumer and relay")
    # -- outbound delivery: Subscriptions (rest-hook) and the hospital push (README "Subscribing") ---------------
    subscription_allowed_hosts: str = Field(
        default="", description="comma-separated hosts Subscription endpoints may name; empty = none"
    )
    delivery_max_attempts: int = Field(default=6, description="failed tries before error / dead letter")
    delivery_retry_base_ms: int = Field(default=1000, description="first retry delay, doubled each attempt")
    delivery_retry_max_ms: int = Field(default=300000, description="longest retry delay")
    delivery_timeout_ms: int = Field(default=10000, description="HTTP timeout of one delivery request")
    delivery_lease_ms: int = Field(default=30000, description="a worker killed mid-delivery is taken over after")
    delivery_poll_ms: int = Field(default=200, description="idle poll interval of the delivery duty")
    delivery_batch: int = Field(default=100, description="changes fanned out, or notifications sent, per round")
    delivery_retention_days: int = Field(default=7, description="sent notifications kept for $resend")
    ehr_base_url: str = Field(default="", description="hospital FHIR server base; empty = no push")
    ehr_token_url: str = Field(default="", description="its OAuth 2.0 token endpoint (SMART Backend Services)")
    ehr_client_id: str = ""
    ehr_private_key_file: str = Field(default="", description="PEM RSA or EC private key (RS384 / ES384)")
    ehr_key_id: str = Field(default="", description="`kid` of the key in the client's registered JWKS")
    ehr_scope: str = "system/CarePlan.write system/Task.write"

    @property
    def allowed_event_sources(self) -> frozenset[str] | None:
        """The inbound sources accepted; None = any (CAREPATH_EVENTS_ALLOWED_SOURCES unset)."""
        sources = frozenset(s.strip() for s in self.events_allowed_sources.split(",") if s.strip())
        return sources or None

    @property
    def internal_event_source(self) -> str:
        """The `source` of the internal events carepath queues itself (the HTTP door, relayed to the inbound
        stream): always accepted, whatever the allowed sources."""
        return f"{self.events_source}/outbox"

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.subscription_allowed_hosts.split(",") if h.strip())

    timezone: str = Field(default="Europe/Paris", description="the hospital's time zone: what 'overdue' and 'today' "
                          "mean on the worklist (an IANA name)")  # fmt: skip
    app_session_secret: str = Field(
        default="",
        description="signs the worklist's session cookie; empty = a random secret per process "
        "(sessions end at restart; set it with several workers)",
    )
    app_session_idle_minutes: int = Field(default=30, ge=1, description="worklist session idle timeout")
    app_oidc_client_id: str = Field(
        default="",
        description="jwt: the worklist's client id at the issuer (sign-in with the code flow + PKCE); "
        "dev: optional (default carepath-app)",
    )
    app_oidc_client_secret: str = Field(default="", description="its secret, for a confidential client (HTTP Basic)")
    app_oidc_scope: str = Field(
        default="openid fhirUser user/*.rs user/Task.u",
        description="the scopes the worklist asks for at sign-in; what the issuer grants is what the pages allow",
    )

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

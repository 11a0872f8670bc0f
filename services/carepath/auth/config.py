"""What the auth settings mean at start-up: the mode checks and the token verifier they configure."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import httpx

from carepath.auth.dev import DEV_AUDIENCE, DEV_ISSUER, dev_keys
from carepath.auth.dev_issuer import BASE as DEV_ISSUER_PATH
from carepath.auth.dev_issuer import DEV_CLIENT_ID
from carepath.auth.keys import RemoteKeys, StaticKeys
from carepath.auth.oidc import OidcClient
from carepath.auth.tokens import Introspector, JwtVerifier, TokenVerifier
from carepath.settings import Settings

log = logging.getLogger("carepath.auth")
LOCAL_BASE = "http://carepath.local"  # the dev issuer's back channel: requests to this app itself, in-process


class InsecureBind(Exception):
    """`off`/`dev` asked to listen beyond this machine."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to expose an unauthenticated (off) or dev-keyed (dev) server to a network, unless told to."""
    if settings.auth in ("off", "dev") and not is_loopback(host) and not settings.allow_insecure_bind:
        raise InsecureBind(
            f"CAREPATH_AUTH={settings.auth} refuses to listen on {host}: only loopback addresses are allowed "
            "without authentication; use CAREPATH_AUTH=jwt, or set CAREPATH_ALLOW_INSECURE_BIND=1 inside a "
            "container that is not reachable from outside"
        )


def announce(settings: Settings) -> None:
    if settings.auth == "off":
        log.warning("CAREPATH_AUTH=off: the API accepts unauthenticated requests (local development only)")
    elif settings.auth == "dev":
        log.warning("CAREPATH_AUTH=dev: tokens from `carepath dev-token` are accepted (local development only)")


def announce_events_door(settings: Settings) -> None:
    """Loud when any producer's events are applied: said where the inbound consumer starts (`carepath worker`,
    or `serve` running the duties embedded)."""
    if settings.allowed_event_sources is None:
        log.warning("CAREPATH_EVENTS_ALLOWED_SOURCES is unset: inbound events from ANY CloudEvents source are "
                    "applied; list the producers' sources to refuse the others")  # fmt: skip


def build_verifier(settings: Settings, client: httpx.AsyncClient) -> TokenVerifier | None:
    """None when auth is off."""
    if settings.auth == "off":
        return None
    if settings.auth == "dev":
        keys = dev_keys(settings.data_dir)
        return TokenVerifier(JwtVerifier(keys, issuer=DEV_ISSUER, audience=DEV_AUDIENCE, leeway_s=30), None)
    common = {"issuer": settings.auth_issuer, "audience": settings.auth_audience, "leeway_s": settings.auth_leeway_s}
    jwt_verifier = None
    if settings.auth_jwks_file is not None:
        jwt_verifier = JwtVerifier(StaticKeys.from_file(settings.auth_jwks_file), **common)  # type: ignore[arg-type]
    elif settings.auth_jwks_url:
        jwt_verifier = JwtVerifier(RemoteKeys(settings.auth_jwks_url, client), **common)  # type: ignore[arg-type]
    introspector = None
    if settings.auth_introspection_url:
        introspector = Introspector(
            settings.auth_introspection_url, client, client_id=settings.auth_introspection_client_id,
            client_secret=settings.auth_introspection_client_secret, **common,  # type: ignore[arg-type]
        )  # fmt: skip
    return TokenVerifier(jwt_verifier, introspector)


def build_oidc(settings: Settings, client: httpx.AsyncClient, verifier: TokenVerifier | None,
               local: Callable[[], httpx.AsyncClient]) -> OidcClient | None:  # fmt: skip
    """The worklist's sign-in: at the API's issuer (jwt, once CAREPATH_APP_OIDC_CLIENT_ID is set), at carepath's
    own development issuer (dev, reached through `local()`, a client on this very app), or none (off)."""
    if verifier is None or (settings.auth == "jwt" and not settings.app_oidc_client_id):
        return None
    if settings.auth == "dev":
        http, issuer, discovery = local(), DEV_ISSUER, f"{LOCAL_BASE}{DEV_ISSUER_PATH}"
    else:
        http, issuer, discovery = client, settings.auth_issuer, settings.auth_issuer.rstrip("/")
    return OidcClient(
        http, verifier, discovery_url=f"{discovery}/.well-known/openid-configuration", issuer=issuer,
        client_id=settings.app_oidc_client_id or DEV_CLIENT_ID, client_secret=settings.app_oidc_client_secret,
        scope=settings.app_oidc_scope, leeway_s=settings.auth_leeway_s,
    )  # fmt: skip

"""The rules of an accepted Subscription (pure: no I/O), applied when one is written and again before sending.

- channel: `rest-hook` only; `payload` absent (POST with no body) or `application/fhir+json` (PUT of the resource).
- criteria: a search on Task or CarePlan, parsed by the server's own search parser (unknown parameters refused).
- endpoint: an absolute `https` URL — `http` only to a loopback host — whose host is on the allow-list
  (`CAREPATH_SUBSCRIPTION_ALLOWED_HOSTS`). The form is checked when the Subscription is written (400/422); the
  allow-list by the worker before every request, so narrowing the list stops delivery at once.
- headers (`channel.header`, "Name: value"): the values are write-only. The stored resource keeps each header's
  name with the value masked; the values live apart (subscription_state.headers). A client that sends a header
  back with the mask keeps the value stored for that name.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from carepath.errors import BusinessRuleViolation, InvalidRequest, NotSupported
from carepath.fhir.search.query import SearchQuery, parse_search

SUBSCRIBABLE = ("Task", "CarePlan")
FHIR_JSON = "application/fhir+json"
MASK = "***"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-type"})


def parse_criteria(criteria: Any) -> SearchQuery:
    """`Task?status=ready` -> the SearchQuery; 400 when it is no search this server understands."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise InvalidRequest("Subscription.criteria is required", expression=("Subscription.criteria",))
    res_type, _, query = criteria.strip().partition("?")
    if res_type not in SUBSCRIBABLE:
        raise NotSupported(f"Subscription.criteria must search {' or '.join(SUBSCRIBABLE)}, not {res_type!r}",
                           expression=("Subscription.criteria",))  # fmt: skip
    try:
        return parse_search(res_type, parse_qsl(query, keep_blank_values=True))
    except InvalidRequest as exc:
        raise InvalidRequest(
            f"Subscription.criteria: {exc.diagnostics}", expression=("Subscription.criteria",)
        ) from None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_form(endpoint: Any) -> str:
    """The endpoint when it is an absolute https URL (http to loopback); 422 otherwise."""
    where = ("Subscription.channel.endpoint",)
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidRequest("Subscription.channel.endpoint is required", expression=where)
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BusinessRuleViolation(f"{endpoint!r} is not an absolute http(s) URL", expression=where)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BusinessRuleViolation("Subscription endpoints must use https (http only to a loopback host)",
                                    expression=where)  # fmt: skip
    if parts.username or parts.password or parts.fragment:
        raise BusinessRuleViolation("The endpoint must not carry credentials or a fragment", expression=where)
    return endpoint


def endpoint_refusal(endpoint: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why the worker must not contact `endpoint` now (None: it may)."""
    try:
        check_endpoint_form(endpoint)
    except (InvalidRequest, BusinessRuleViolation) as exc:
        return exc.diagnostics
    host = (urlsplit(endpoint).hostname or "").lower()
    if host not in allowed_hosts:
        return f"the endpoint host {host!r} is not on CAREPATH_SUBSCRIPTION_ALLOWED_HOSTS"
    return None


def check_channel(channel: Any) -> dict[str, Any]:
    where = ("Subscription.channel",)
    if not isinstance(channel, dict):
        raise InvalidRequest("Subscription.channel is required", expression=where)
    if channel.get("type") != "rest-hook":
        raise NotSupported(f"channel.type {channel.get('type')!r} is not supported; use rest-hook",
                           expression=("Subscription.channel.type",))  # fmt: skip
    payload = channel.get("payload")
    if payload is not None and str(payload).split(";")[0].strip() != FHIR_JSON:
        raise NotSupported(f"channel.payload {payload!r} is not supported: omit it, or use {FHIR_JSON}",
                           expression=("Subscription.channel.payload",))  # fmt: skip
    check_endpoint_form(channel.get("endpoint"))
    return channel


def split_headers(headers: Any, stored: list[str]) -> tuple[list[str], list[str]]:
    """(masked, real): `channel.header` as the resource keeps it and the values as sent.

    A header whose value is the mask takes the stored value of the same name (a client updating the resource it
    read); a mask with no stored value is refused.
    """
    where = ("Subscription.channel.header",)
    known = {h.partition(":")[0].strip().lower(): h for h in stored}
    masked, real = [], []
    for header in headers or []:
        name, colon, value = str(header).partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.match(name) or any(c in value for c in "\r\n"):
            raise InvalidRequest(f"channel.header {header!r} must be 'Name: value'", expression=where)
        if name.lower() in _RESERVED:
            raise BusinessRuleViolation(f"channel.header may not set {name}", expression=where)
        if value == MASK:
            if name.lower() not in known:
                raise InvalidRequest(f"channel.header {name}: the masked value has nothing stored to stand for",
                                     expression=where)  # fmt: skip
            real.append(known[name.lower()])
        else:
            real.append(f"{name}: {value}")
        masked.append(f"{name}: {MASK}")
    return masked, real

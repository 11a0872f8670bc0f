"""What carepath sends to a Subscription's endpoint (pure): the handshake and the event notifications.

R4 rest-hook semantics (Subscription.channel): without `payload`, a POST with no body to the endpoint; with
`payload = application/fhir+json`, the endpoint is a FHIR base and the resource is sent as
`PUT [endpoint]/[type]/[id]`. The `channel.header` values are sent with every request. carepath adds, as the
Subscriptions Backport IG does with its SubscriptionStatus, the per-Subscription event number (gapless, from 1),
a notification id that stays the same when a notification is sent again (receivers de-duplicate on it) and the
notification type.
"""

from __future__ import annotations

from dataclasses import dataclass

FHIR_JSON = "application/fhir+json"
SUBSCRIPTION = "X-Carepath-Subscription"
EVENT_NUMBER = "X-Carepath-Event-Number"
NOTIFICATION_ID = "X-Carepath-Notification-Id"
NOTIFICATION_TYPE = "X-Carepath-Notification-Type"
FOCUS = "X-Carepath-Focus"


@dataclass(frozen=True)
class Target:
    """A Subscription's channel, as the sender needs it (header values included, they are sent)."""

    subscription_id: str
    endpoint: str
    payload: str | None
    headers: tuple[str, ...]  # "Name: value"


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


def _headers(target: Target, kind: str, number: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in target.headers:
        name, _, value = header.partition(":")
        out[name.strip()] = value.strip()
    out.update({SUBSCRIPTION: f"Subscription/{target.subscription_id}", NOTIFICATION_TYPE: kind,
                EVENT_NUMBER: str(number)})  # fmt: skip
    return out


def handshake(target: Target, events: int) -> OutboundRequest:
    """carepath's handshake before `requested` becomes `active` (R4 has none; README documents it): a POST with no
    body to a no-payload endpoint, `GET [base]/metadata` to a FHIR-base endpoint. Any 2xx accepts."""
    headers = _headers(target, "handshake", events)
    if target.payload:
        return OutboundRequest("GET", f"{target.endpoint.rstrip('/')}/metadata", headers)
    return OutboundRequest("POST", target.endpoint, headers)


def notification(
    target: Target, number: int, notification_id: str, res_type: str, res_id: str, version: int, content: str | None
) -> OutboundRequest:
    """Event `number` about `res_type/res_id` version `version` (whose JSON is `content`)."""
    headers = _headers(target, "event-notification", number)
    headers[NOTIFICATION_ID] = notification_id
    headers[FOCUS] = f"{res_type}/{res_id}/_history/{version}"
    if target.payload and content is not None:
        headers["Content-Type"] = FHIR_JSON
        url = f"{target.endpoint.rstrip('/')}/{res_type}/{res_id}"
        return OutboundRequest("PUT", url, headers, content.encode())
    return OutboundRequest("POST", target.endpoint, headers)

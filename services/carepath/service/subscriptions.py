"""Subscriptions (R4 rest-hook): what a write of a Subscription does, the server's status changes, `$status`,
`$resend`. The delivery itself (fan-out, HTTP) is the `delivery/` transport.

Status lifecycle: a client writes `requested` (or `active`, taken as a request) or `off`. The worker then
checks the endpoint against the allow-list, performs carepath's handshake and sets `active`, or after repeated
failure `error` with the `error` text; `end` reached -> `off`. A client re-activates an `error` Subscription by
writing `requested` again: the handshake is repeated and the notifications given up on (the dead letters) are
sent again, in order. While a Subscription is `active` or `error` its events are counted and kept, so nothing a
receiver missed is lost. The server's changes are new versions of the resource (history shows them).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from carepath.errors import InvalidRequest, NotFound
from carepath.fhir.search.dates import parse_instant
from carepath.fhir.validation import validate_resource
from carepath.service.subscription_rules import check_channel, parse_criteria, split_headers
from carepath.store import delivery
from carepath.store.records import StoredResource, utc_now
from carepath.store.repository import StoreTransaction

SUBSCRIPTION = "Subscription"
_CLIENT_STATUSES = ("requested", "active", "off")


async def before_write(
    tx: StoreTransaction, res_id: str | None, body: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Check a Subscription create/update (`res_id` None for a create) and mask its header values; returns the
    body to store and the real header values. Nothing is stored when a rule is broken (400/422)."""
    validate_resource(body)  # R4 first (a code outside R4's own bindings is 400), then carepath's rules (422)
    body = dict(body)
    previous = await delivery.get_state(tx.conn, res_id) if res_id else None
    channel = dict(check_channel(body.get("channel")))
    parse_criteria(body.get("criteria"))
    masked, real = split_headers(channel.get("header"), previous.headers if previous else [])
    if masked:
        channel["header"] = masked
    body["channel"] = channel
    if body.get("end") is not None:
        _end(body)
    body.update(_status(body, previous, real))
    if body.get("error") is None:
        body.pop("error", None)
    return body, real


def _end(body: dict[str, Any]) -> datetime:
    try:
        return parse_instant(str(body["end"]))
    except (InvalidRequest, ValueError):
        raise InvalidRequest("Subscription.end must be an instant", expression=("Subscription.end",)) from None


def _status(body: dict[str, Any], previous: delivery.State | None, headers: list[str]) -> dict[str, Any]:
    """The status (and error) to store: the client may ask for `requested` or `off`; `active` and `error` are the
    server's to give, so an update that keeps the channel keeps the server's status."""
    asked = body.get("status")
    if asked not in (*_CLIENT_STATUSES, "error"):
        raise InvalidRequest("Subscription.status must be requested, active, error or off",
                             expression=("Subscription.status",))  # fmt: skip
    if asked in ("off", "requested"):
        return {"status": asked, "error": None}
    channel = body["channel"]
    same = previous is not None and (previous.criteria, previous.endpoint, previous.payload, previous.headers) == (
        body.get("criteria"), channel.get("endpoint"), channel.get("payload"), headers,
    )  # fmt: skip
    if same and previous is not None and previous.status in ("active", "error"):
        return {"status": previous.status, "error": previous.error}
    return {"status": "requested", "error": None}


async def after_write(tx: StoreTransaction, stored: StoredResource, headers: list[str]) -> None:
    """Keep the delivery state in step with the stored Subscription (same transaction)."""
    if stored.deleted:
        await delivery.drop_state(tx.conn, stored.res_id)
        return
    body = stored.json()
    previous = await delivery.get_state(tx.conn, stored.res_id, for_update=True)
    status = str(body["status"])
    state = delivery.State(
        id=stored.res_id, status=status, criteria=str(body["criteria"]), endpoint=body["channel"]["endpoint"],
        payload=body["channel"].get("payload"), headers=headers,
        end=_end(body) if body.get("end") is not None else None,
        events=previous.events if previous else 0, error=body.get("error"),
        attempts=previous.attempts if previous and status == previous.status else 0,
        due=previous.due if previous and status == previous.status else utc_now(),
    )  # fmt: skip
    await delivery.put_state(tx.conn, state)
    if status == "requested" and previous is not None and previous.status == "error":
        await delivery.requeue(tx.conn, stored.res_id, utc_now(), since=None)  # re-activation: dead letters again
    if status == "off":  # nothing more is sent; what was pending is dropped with the subscription's interest
        for note in await delivery.notifications(tx.conn, stored.res_id):
            if note.status == "pending":
                await delivery.record_attempt(tx.conn, note.id, status="dead", last_error="subscription off")


async def set_status(tx: StoreTransaction, sub_id: str, status: str, error: str | None) -> None:
    """The server's status change: a new version of the Subscription and its state, in one transaction."""
    current = await tx.read(SUBSCRIPTION, sub_id)
    body = current.json()
    body["status"] = status
    if error:
        body["error"] = error
    else:
        body.pop("error", None)
    await tx.update(SUBSCRIPTION, sub_id, body)
    state = await delivery.get_state(tx.conn, sub_id, for_update=True)
    if state is not None:
        await delivery.put_state(tx.conn, replace(state, status=status, error=error, attempts=0, due=None))


async def status_parameters(tx: StoreTransaction, sub_id: str) -> dict[str, Any]:
    """`$status`: shaped like the Subscriptions Backport IG's R4 SubscriptionStatus (Parameters)."""
    state = await _state(tx, sub_id)
    counts = await delivery.counts(tx.conn, sub_id)
    last = await delivery.last_sent(tx.conn, sub_id)
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{sub_id}"}},
        {"name": "status", "valueCode": state.status},
        {"name": "type", "valueCode": "query-status"},
        {"name": "events-since-subscription-start", "valueString": str(state.events)},
        {"name": "last-delivered-event", "valueString": str(last or 0)},
        {"name": "events-pending", "valueInteger": counts.get("pending", 0)},
        {"name": "events-dead", "valueInteger": counts.get("dead", 0)},
    ]
    if state.error:
        params.append({"name": "error", "valueCodeableConcept": {"text": state.error}})
    return {"resourceType": "Parameters", "parameter": params}


async def resend(tx: StoreTransaction, sub_id: str, since: int | None) -> dict[str, Any]:
    """`$resend`: notifications numbered above `since` (or, without it, the dead ones) are sent again, in order,
    under their original numbers and ids; an `error` Subscription goes back to `requested` (a new handshake)."""
    state = await _state(tx, sub_id)
    if state.status == "off":
        raise InvalidRequest("The Subscription is off: set it to requested to resume delivery")
    count = await delivery.requeue(tx.conn, sub_id, utc_now(), since=since)
    if state.status == "error":
        await set_status(tx, sub_id, "requested", None)
    return {"resourceType": "Parameters", "parameter": [{"name": "requeued", "valueInteger": count}]}


async def _state(tx: StoreTransaction, sub_id: str) -> delivery.State:
    await tx.read(SUBSCRIPTION, sub_id)  # 404 / 410 as for a read
    state = await delivery.get_state(tx.conn, sub_id)
    if state is None:
        raise NotFound(f"Subscription/{sub_id} has no delivery state")
    return state

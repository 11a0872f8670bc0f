"""The push to the hospital's FHIR server: each writing transaction's CarePlans and Tasks as one transaction
Bundle of conditional updates (delivery/bundle.py), with a SMART Backend Services token (delivery/smart.py).

What is sent is the *current* version of each resource, read when the push is attempted: pushes are idempotent
(conditional update on carepath's identifier), a retry or a late push never writes an older state over a newer.
Outcomes: 2xx done (the row goes); 401 -> a new token, once; 409/412 (a conflict) -> re-read and retried once at
once, then dead-lettered; 5xx, 429, timeouts and the token endpoint failing -> retried on the backoff schedule up
to `delivery_max_attempts`, then dead-lettered; other 4xx -> dead-lettered at once (the request itself is wrong).
Dead letters stay in `ehr_push` with status `dead` and the last error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import httpx

from carepath import jsonutil
from carepath.delivery.backoff import retry_delay
from carepath.delivery.bundle import transaction_bundle
from carepath.delivery.smart import TokenError, TokenSource
from carepath.settings import Settings
from carepath.store import delivery
from carepath.store.records import utc_now
from carepath.store.repository import Repository

log = logging.getLogger("carepath.delivery")
Verdict = Literal["done", "conflict", "retry", "fatal"]
FHIR_JSON = "application/fhir+json"


class EhrPusher:
    def __init__(
        self, repository: Repository, settings: Settings, client: httpx.AsyncClient,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:  # fmt: skip
        self.repository, self.settings, self.client, self.clock = repository, settings, client, clock
        self.tokens = TokenSource(settings, client, clock)

    async def push_once(self) -> int:
        """Attempt the oldest due push; 1 if one was attempted, 0 if none was due."""
        now = self.clock()
        async with self.repository.transaction() as tx:
            push = await delivery.claim_push(tx.conn, now, timedelta(milliseconds=self.settings.delivery_lease_ms))
        if push is None:
            return 0
        async with self.repository.reader() as tx:
            resources = [s.json() for s in await delivery.current(tx.conn, push.refs)]
        verdict, error = await self._send(transaction_bundle(resources)) if resources else ("done", None)
        await self._record(push, verdict, error)
        return 1

    async def _send(self, bundle: dict[str, object]) -> tuple[Verdict, str | None]:
        body = jsonutil.dumps(bundle)
        for renewed in (False, True):
            try:
                token = await self.tokens.token()
            except TokenError as exc:
                return "retry", str(exc)
            try:
                response = await self.client.post(
                    self.settings.ehr_base_url, content=body, timeout=self.settings.delivery_timeout_ms / 1000,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
                )  # fmt: skip
            except httpx.TimeoutException:
                return "retry", f"POST {self.settings.ehr_base_url}: no answer in time"
            except httpx.HTTPError as exc:
                return "retry", f"POST {self.settings.ehr_base_url}: {type(exc).__name__}: {exc}"
            if response.status_code == 401 and not renewed:  # expired or revoked early: one new token
                self.tokens.invalidate()
                continue
            return _verdict(response.status_code), _describe(response)
        return "retry", "unauthorised after a new token"

    async def _record(self, push: delivery.Push, verdict: Verdict, error: str | None) -> None:
        now, max_attempts = self.clock(), self.settings.delivery_max_attempts
        async with self.repository.transaction() as tx:
            if verdict == "done":
                await delivery.remove_push(tx.conn, push.id)
            elif verdict == "conflict" and push.conflicts == 0:  # re-read (the next attempt reads again) and retry
                await delivery.update_push(tx.conn, push.id, conflicts=1, due=now, last_error=error)
            elif verdict == "retry" and push.attempts + 1 < max_attempts:
                delay = retry_delay(push.attempts + 1, self.settings.delivery_retry_base_ms,
                                    self.settings.delivery_retry_max_ms)  # fmt: skip
                await delivery.update_push(tx.conn, push.id, attempts=push.attempts + 1, due=now + delay,
                                           last_error=error)  # fmt: skip
            else:
                log.warning("hospital push %s dead-lettered: %s", push.batch, error)
                await delivery.update_push(tx.conn, push.id, status="dead", attempts=push.attempts + 1,
                                           last_error=error)  # fmt: skip


def _verdict(status: int) -> Verdict:
    if 200 <= status < 300:
        return "done"
    if status in (409, 412):
        return "conflict"
    if status >= 500 or status in (408, 429):
        return "retry"
    return "fatal"


def _describe(response: httpx.Response) -> str | None:
    if 200 <= response.status_code < 300:
        return None
    return f"POST {response.request.url} answered {response.status_code}: {response.text[:500]}"

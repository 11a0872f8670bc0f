"""The Subscription sender: handshakes and notifications over HTTP, outside any write transaction.

Per Subscription one sender at a time (a lease, store/delivery.py) sends its notifications in event-number order;
results are committed after every `_RECORD_EVERY` notifications and at the first failure: a worker killed
mid-batch loses nothing, the next holder of the lease sends what was not recorded again, under the same
notification ids. A failure is retried on the backoff schedule
(delivery/backoff.py); after `delivery_max_attempts` the notification is dead-lettered (status `dead`, its error
kept) and the Subscription set to `error`, until the client re-activates it or calls `$resend`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import httpx

from carepath.delivery.backoff import retry_delay
from carepath.delivery.http import Result, perform
from carepath.delivery.notify import OutboundRequest, Target, handshake, notification
from carepath.service.subscription_rules import endpoint_refusal
from carepath.service.subscriptions import set_status
from carepath.settings import Settings
from carepath.store import delivery
from carepath.store.records import utc_now
from carepath.store.repository import Repository

_PARALLEL = 8  # Subscriptions served at once by one worker
# Delivered notifications are recorded once per this many (one transaction, not one each): a worker killed in
# between sends at most this many again, under their notification ids (at-least-once; receivers de-duplicate).
_RECORD_EVERY = 20


class SubscriptionSender:
    def __init__(
        self, repository: Repository, settings: Settings, client: httpx.AsyncClient,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:  # fmt: skip
        self.repository, self.settings, self.client, self.clock = repository, settings, client, clock
        self._gate = asyncio.Semaphore(_PARALLEL)

    async def send_once(self) -> int:
        """One round over the Subscriptions with work due; how many requests were made."""
        async with self.repository.reader() as tx:
            ids = await delivery.sendable(tx.conn, self.clock(), self.settings.delivery_batch)
        return sum(await asyncio.gather(*(self._serve(sub_id) for sub_id in ids)))

    async def _serve(self, sub_id: str) -> int:
        async with self._gate:
            now = self.clock()
            async with self.repository.transaction() as tx:
                until = now + timedelta(milliseconds=self.settings.delivery_lease_ms)
                if not await delivery.take_lease(tx.conn, sub_id, now, until):
                    return 0
                state = await delivery.get_state(tx.conn, sub_id)
            try:
                return await self._work(state) if state is not None else 0
            finally:
                async with self.repository.transaction() as tx:
                    await delivery.release_lease(tx.conn, sub_id)

    async def _work(self, state: delivery.State) -> int:
        now = self.clock()
        if state.end is not None and state.end <= now and state.status != "off":
            await self._set(state.id, "off", None)
            return 0
        refusal = endpoint_refusal(state.endpoint, self.settings.allowed_hosts)
        if refusal is not None:  # never contacted: the allow-list is checked before every request
            await self._set(state.id, "error", f"not delivered: {refusal}")
            return 0
        target = Target(state.id, state.endpoint, state.payload, tuple(state.headers))
        if state.status == "requested":
            await self._handshake(state, target)
            return 1
        if state.status == "active":
            return await self._notifications(state, target)
        return 0

    async def _handshake(self, state: delivery.State, target: Target) -> None:
        result = await self._perform_request(handshake(target, state.events))
        if result.ok:
            await self._set(state.id, "active", None)
            return
        failures = state.attempts + 1
        if failures >= self.settings.delivery_max_attempts:
            await self._set(state.id, "error", f"handshake failed {failures} times; last: {result.error}")
            return
        due = self.clock() + self._delay(failures)
        async with self.repository.transaction() as tx:
            await delivery.put_state(tx.conn, replace(state, attempts=failures, due=due, error=result.error))

    async def _notifications(self, state: delivery.State, target: Target) -> int:
        """Send the due notifications in number order, a batch at a time, until one fails or none is due."""
        sent = 0
        while sent < self.settings.delivery_batch:
            async with self.repository.reader() as tx:
                batch = await delivery.due_batch(tx.conn, state.id, self.clock(), _RECORD_EVERY)
            if not batch:
                return sent
            done: list[int] = []
            for note, content in batch:
                request = notification(target, note.event_number, note.notification_id, note.res_type, note.res_id,
                                       note.version, content)  # fmt: skip
                result = await self._perform_request(request)
                sent += 1
                if not result.ok:
                    await self._record(state, done, note, result)
                    return sent
                done.append(note.id)
            await self._record(state, done, None, None)
        return sent

    async def _record(
        self, state: delivery.State, done: list[int], failed: delivery.Notification | None, result: Result | None
    ) -> None:
        """Commit the delivered notifications and, if one failed, its retry or its dead letter and `error`."""
        now = self.clock()
        async with self.repository.transaction() as tx:
            await delivery.mark_sent(tx.conn, done, now)
            if failed is None or result is None:
                return
            failures = failed.attempts + 1
            if failures < self.settings.delivery_max_attempts:
                await delivery.record_attempt(tx.conn, failed.id, attempts=failures,
                                              due=now + self._delay(failures), last_error=result.error)  # fmt: skip
                return
            await delivery.record_attempt(tx.conn, failed.id, status="dead", attempts=failures, last_error=result.error)
            error = f"event {failed.event_number} not delivered after {failures} attempts; last: {result.error}"
            await set_status(tx, state.id, "error", error)

    async def _perform_request(self, request: OutboundRequest) -> Result:
        return await perform(self.client, request, self.settings.delivery_timeout_ms / 1000)

    def _delay(self, failures: int) -> timedelta:
        return retry_delay(failures, self.settings.delivery_retry_base_ms, self.settings.delivery_retry_max_ms)

    async def _set(self, sub_id: str, status: str, error: str | None) -> None:
        async with self.repository.transaction() as tx:
            await set_status(tx, sub_id, status, error)

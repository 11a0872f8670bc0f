"""Inbound shards: which stream an inbound event goes on, and the names of each shard's keys.

`CAREPATH_EVENTS_INBOUND_SHARDS` = N. With N = 1 (the default) there is one inbound stream, `carepath:inbound`,
with its dead letters on `carepath:inbound:dead`, exactly as before sharding. With N > 1, shard i is the stream
`carepath:inbound:{i}` with its dead letters on `carepath:inbound:dead:{i}` and its lease
`carepath:inbound:{i}:lease:<group>`: the braces are a Redis Cluster hash tag, so the keys of one shard share a
slot (dead-lettering, an XADD and an XACK in one MULTI, stays single-slot) and different shards spread over the
cluster's primaries.

**The rule every producer follows** (the outbox relay of the HTTP door, the demo, integration engines): the
event's patient key — its CloudEvents `subject` when set, else the patient its data names (`Patient/<id>`: the
resource itself, its `subject` / `patient`, or the first such resource of a Bundle; `InboundEvent.patient()`) —
goes on shard `crc32(utf8(key)) mod N`, CRC-32 as in zlib, PNG and Java's `java.util.zip.CRC32` (stable across
processes and languages, unlike Python's salted `hash()`). An event without a patient key, or one that cannot be
parsed, goes on shard 0. All events of one patient then sit in one stream, read by one consumer at a time, which
is what keeps their order (events/consumer.py).

Changing N moves patients between shards: stop the producers and let the streams (and dead letters) drain first.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

from carepath.errors import CarepathError
from carepath.events.envelope import parse_inbound
from carepath.settings import Settings

NO_PATIENT_SHARD = 0  # events without a patient key (and unparseable ones, dead-lettered there)


@dataclass(frozen=True)
class Shard:
    index: int
    stream: str  # the inbound stream of this shard
    dead: str  # its dead-letter stream
    lease: str  # who reads it now (events/leases.py)


def shards(settings: Settings) -> tuple[Shard, ...]:
    """Every inbound shard, in index order."""
    s = settings
    return _named(s.events_inbound_shards, s.events_inbound_stream, s.events_dead_stream, s.events_group)


@lru_cache(maxsize=16)
def _named(count: int, base: str, dead: str, group: str) -> tuple[Shard, ...]:
    # built once per configuration: producers look a shard up for every event
    if count == 1:
        return (Shard(0, base, dead, f"{base}:lease:{group}"),)
    return tuple(Shard(i, f"{base}:{{{i}}}", f"{dead}:{{{i}}}", f"{base}:{{{i}}}:lease:{group}") for i in range(count))


def shard_index(patient: str | None, count: int) -> int:
    if not patient or count == 1:
        return NO_PATIENT_SHARD
    return zlib.crc32(patient.encode()) % count


def shard_for(settings: Settings, patient: str | None) -> Shard:
    """The shard of a patient key (`Patient/<id>`, or the CloudEvents subject)."""
    return shards(settings)[shard_index(patient, settings.events_inbound_shards)]


def route(settings: Settings, raw: bytes) -> Shard:
    """The shard an encoded inbound event belongs on (its patient key as the consumer will read it)."""
    if settings.events_inbound_shards == 1:
        return shards(settings)[0]
    try:
        patient = parse_inbound(raw).patient()
    except CarepathError:
        patient = None
    return shard_for(settings, patient)


def workers_key(settings: Settings) -> str:
    """The sorted set of live consumers (heartbeats), from which each worker computes its fair share of shards."""
    return f"{settings.events_inbound_stream}:workers:{settings.events_group}"

"""Inbound shard names and the producers' routing rule (events/shards.py), without any server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from carepath import jsonutil
from carepath.events.shards import route, shard_for, shard_index, shards
from carepath.settings import Settings


def _event(data: dict, subject: str | None = None) -> bytes:
    event = {"specversion": "1.0", "id": "1", "source": "urn:feed", "type": "dev.carepath.fhir.resource", "data": data}
    if subject:
        event["subject"] = subject
    return jsonutil.dumps(event)


def test_one_shard_keeps_the_names_of_an_unsharded_deployment() -> None:
    [only] = shards(Settings())
    assert (only.index, only.stream, only.dead, only.lease) == (
        0, "carepath:inbound", "carepath:inbound:dead", "carepath:inbound:lease:carepath"
    )  # fmt: skip
    assert route(Settings(), _event({"resourceType": "Patient", "id": "p1"})) == only


def test_shards_are_named_with_a_redis_cluster_hash_tag() -> None:
    named = shards(Settings(events_inbound_shards=3))
    assert [s.stream for s in named] == ["carepath:inbound:{0}", "carepath:inbound:{1}", "carepath:inbound:{2}"]
    assert named[2].dead == "carepath:inbound:dead:{2}"
    assert named[2].lease == "carepath:inbound:{2}:lease:carepath"


def test_the_hash_is_the_standard_crc32_so_other_languages_compute_the_same_shard() -> None:
    # CRC-32's published check value: crc32("123456789") = 0xCBF43926 (zlib, PNG, java.util.zip.CRC32)
    assert shard_index("123456789", 16) == 0xCBF43926 % 16 == 6
    assert shard_index("123456789", 1) == 0


def test_patients_spread_over_the_shards_and_events_without_one_go_to_shard_0() -> None:
    counts = [0] * 4
    for n in range(400):
        counts[shard_index(f"Patient/{n}", 4)] += 1
    assert min(counts) > 60  # roughly even: 100 each expected
    assert shard_index(None, 4) == shard_index("", 4) == 0


def test_the_route_follows_the_patient_key_the_consumer_reads() -> None:
    settings = Settings(events_inbound_shards=8)
    obs = {"resourceType": "Observation", "status": "final", "code": {}, "subject": {"reference": "Patient/42"}}
    expected = shard_for(settings, "Patient/42")
    assert route(settings, _event(obs)) == expected  # the patient in the data
    assert route(settings, _event({"resourceType": "Patient", "id": "42"})) == expected  # the Patient itself
    assert route(settings, _event({}, subject="Patient/42")) == expected  # the CloudEvents subject wins
    assert route(settings, b"not json {").index == 0
    assert route(settings, _event({"resourceType": "Bundle", "type": "batch", "entry": []})).index == 0


def test_the_shard_count_is_bounded() -> None:
    with pytest.raises(ValidationError):
        Settings(events_inbound_shards=0)

"""DictResolver: canonical resolution with and without version."""

from __future__ import annotations

import pytest
from engine_support import NOW, activity

from carepath.engine import ApplyContext, DictResolver
from carepath.errors import InvalidRequest


def test_unversioned_canonical_gets_the_highest_version() -> None:
    versions = [activity("a", version=v) for v in ("1.9.0", "1.10.0", "1.2.0")]
    resolver = DictResolver(versions)
    found = resolver.resolve("https://fhir.carepath.dev/ActivityDefinition/a")
    assert found is not None and found["version"] == "1.10.0"


def test_versioned_canonical_gets_that_version_or_nothing() -> None:
    resolver = DictResolver([activity("a", version="1.0.0"), activity("a", version="2.0.0")])
    found = resolver.resolve("https://fhir.carepath.dev/ActivityDefinition/a|1.0.0")
    assert found is not None and found["version"] == "1.0.0"
    assert resolver.resolve("https://fhir.carepath.dev/ActivityDefinition/a|3.0.0") is None
    assert resolver.resolve("https://fhir.carepath.dev/ActivityDefinition/unknown") is None


def test_non_definitions_are_ignored() -> None:
    resolver = DictResolver([{"resourceType": "Patient", "url": "x"}])
    assert resolver.resolve("x") is None


def test_context_requires_an_aware_now_and_a_reference_subject() -> None:
    with pytest.raises(InvalidRequest):
        ApplyContext(subject="Patient/1", now=NOW.replace(tzinfo=None))
    with pytest.raises(InvalidRequest):
        ApplyContext(subject="p1", now=NOW)

"""The events door's settings and start-up line (CAREPATH_EVENTS_ALLOWED_SOURCES), without any server."""

from __future__ import annotations

import logging

import pytest

from carepath.auth.config import announce_events_door
from carepath.errors import Forbidden
from carepath.service.event_intake import NAMED_EVENT, RESOURCE, InboundEvent, check_source
from carepath.service.trigger_queue import RESOURCE_STORED
from carepath.settings import Settings


def _event(source: str, type_: str = RESOURCE) -> InboundEvent:
    return InboundEvent("1", source, type_, None, {})


def test_the_list_is_parsed_and_unset_means_any() -> None:
    assert Settings(events_allowed_sources="").allowed_event_sources is None
    assert Settings(events_allowed_sources=" urn:a ,urn:b,").allowed_event_sources == {"urn:a", "urn:b"}
    assert Settings(events_source="urn:x").internal_event_source == "urn:x/outbox"


def test_check_source() -> None:
    check_source(_event("urn:anyone"), None, "urn:carepath/outbox")  # unset: any source
    check_source(_event("urn:a"), frozenset({"urn:a"}), "urn:carepath/outbox")
    check_source(_event("urn:carepath/outbox", RESOURCE_STORED), frozenset({"urn:a"}), "urn:carepath/outbox")
    with pytest.raises(Forbidden, match="urn:b") as refused:
        check_source(_event("urn:b"), frozenset({"urn:a"}), "urn:carepath/outbox")
    assert refused.value.status == 403
    with pytest.raises(Forbidden):  # the internal source vouches only for carepath's own internal event type
        check_source(_event("urn:carepath/outbox", NAMED_EVENT), frozenset({"urn:a"}), "urn:carepath/outbox")


def test_an_open_door_is_announced_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        announce_events_door(Settings(events_allowed_sources=""))
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "CAREPATH_EVENTS_ALLOWED_SOURCES" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        announce_events_door(Settings(events_allowed_sources="urn:a"))
    assert caplog.records == []

"""The pure parts of outbound delivery: retry schedule, notification requests, the push Bundle, Subscription rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from carepath.delivery.backoff import retry_delay, schedule
from carepath.delivery.bundle import transaction_bundle
from carepath.delivery.notify import Target, handshake, notification
from carepath.errors import BusinessRuleViolation, InvalidRequest, NotSupported
from carepath.service.subscription_rules import (
    check_channel,
    check_endpoint_form,
    endpoint_refusal,
    parse_criteria,
    split_headers,
)


def test_the_retry_schedule_doubles_up_to_the_cap() -> None:
    assert schedule(6, 1000, 5000) == [timedelta(seconds=s) for s in (1, 2, 4, 5, 5)]
    assert retry_delay(0, 1000, 5000) == timedelta(0)
    assert retry_delay(200, 1000, 300000) == timedelta(minutes=5)  # no overflow for a long outage


TARGET = Target("s1", "https://rx.example/hook", None, ("Authorization: Bearer x", "X-Tenant: a:b"))


def test_a_no_payload_notification_is_a_post_without_body_with_the_event_number() -> None:
    request = notification(TARGET, 7, "n-7", "Task", "t1", 3, '{"resourceType":"Task"}')
    assert (request.method, request.url, request.body) == ("POST", "https://rx.example/hook", None)
    assert request.headers["Authorization"] == "Bearer x"
    assert request.headers["X-Tenant"] == "a:b"  # only the first colon separates name and value
    assert request.headers["X-Carepath-Event-Number"] == "7"
    assert request.headers["X-Carepath-Notification-Id"] == "n-7"
    assert request.headers["X-Carepath-Focus"] == "Task/t1/_history/3"
    assert request.headers["X-Carepath-Notification-Type"] == "event-notification"


def test_a_payload_notification_puts_the_resource_under_the_fhir_base() -> None:
    target = Target("s1", "https://ehr.example/fhir/", "application/fhir+json", ())
    request = notification(target, 1, "n-1", "CarePlan", "c1", 1, '{"resourceType":"CarePlan"}')
    assert (request.method, request.url) == ("PUT", "https://ehr.example/fhir/CarePlan/c1")
    assert request.body == b'{"resourceType":"CarePlan"}'
    assert handshake(target, 0).method == "GET" and handshake(target, 0).url == "https://ehr.example/fhir/metadata"
    assert handshake(TARGET, 4).method == "POST" and handshake(TARGET, 4).headers["X-Carepath-Event-Number"] == "4"


def test_the_push_bundle_uses_conditional_updates_and_conditional_references() -> None:
    task = {"resourceType": "Task", "id": "t1", "meta": {"versionId": "2", "lastUpdated": "x", "tag": [{"code": "a"}]},
            "identifier": [{"system": "urn:other", "value": "1"}], "basedOn": [{"reference": "CarePlan/c1"}],
            "for": {"reference": "Patient/p1"},
            "extension": [{"url": "u", "valueReference": {"reference": "Task/t0"}}]}  # fmt: skip
    (entry,) = transaction_bundle([task])["entry"]
    body = entry["resource"]
    assert entry["request"] == {"method": "PUT", "url": "Task?identifier=https://fhir.carepath.dev/identifier/Task|t1"}
    assert entry["fullUrl"].startswith("urn:uuid:")
    assert "id" not in body and body["meta"] == {"tag": [{"code": "a"}]}
    assert body["identifier"][-1] == {"system": "https://fhir.carepath.dev/identifier/Task", "value": "t1"}
    assert body["identifier"][0] == {"system": "urn:other", "value": "1"}
    assert body["basedOn"][0]["reference"] == "CarePlan?identifier=https://fhir.carepath.dev/identifier/CarePlan|c1"
    assert body["extension"][0]["valueReference"]["reference"].startswith("Task?identifier=")
    assert body["for"] == {"reference": "Patient/p1"}  # not ours: sent as it is
    assert transaction_bundle([task]) == transaction_bundle([task])  # stable fullUrl


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("http://ehr.example/hook", BusinessRuleViolation),  # http to a remote host
        ("ftp://ehr.example/hook", BusinessRuleViolation),
        ("https://user:pw@ehr.example/hook", BusinessRuleViolation),
        ("/relative", BusinessRuleViolation),
        ("", InvalidRequest),
    ],
)
def test_endpoint_forms_that_are_refused(endpoint: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_endpoint_form(endpoint)


def test_http_only_to_loopback_and_only_to_allowed_hosts() -> None:
    for ok in ("https://ehr.example/hook", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x"):
        assert check_endpoint_form(ok) == ok
    allowed = frozenset({"ehr.example", "127.0.0.1"})
    assert endpoint_refusal("https://ehr.example/hook", allowed) is None
    assert endpoint_refusal("https://EHR.example/hook", allowed) is None
    assert "not on CAREPATH_SUBSCRIPTION_ALLOWED_HOSTS" in (endpoint_refusal("https://evil.example/", allowed) or "")
    assert endpoint_refusal("https://ehr.example.evil.example/", allowed) is not None
    assert endpoint_refusal("http://ehr.example/", allowed) is not None  # allowed host, but not https


def test_criteria_are_a_search_on_task_or_careplan() -> None:
    assert parse_criteria("Task?status=ready&owner=Practitioner/1").resource_type == "Task"
    assert parse_criteria("CarePlan").resource_type == "CarePlan"
    with pytest.raises(NotSupported):
        parse_criteria("Observation?code=1")
    with pytest.raises(InvalidRequest):
        parse_criteria("Task?bogus=1")


def test_channels_other_than_rest_hook_or_fhir_json_are_not_supported() -> None:
    with pytest.raises(NotSupported):
        check_channel({"type": "email", "endpoint": "mailto:a@b"})
    with pytest.raises(NotSupported):
        check_channel({"type": "rest-hook", "endpoint": "https://a.example", "payload": "application/fhir+xml"})
    assert check_channel({"type": "rest-hook", "endpoint": "https://a.example", "payload": "application/fhir+json"})


def test_header_values_are_masked_and_a_mask_keeps_the_stored_value() -> None:
    masked, real = split_headers(["Authorization: Bearer s", "X-A: 1"], [])
    assert masked == ["Authorization: ***", "X-A: ***"] and real == ["Authorization: Bearer s", "X-A: 1"]
    masked, real = split_headers(["authorization: ***", "X-A: 2"], real)
    assert real == ["Authorization: Bearer s", "X-A: 2"]
    for bad in (["no colon"], ["X-B: ***"], ["Bad Name: 1"], ["X-C: a\r\nInjected: 1"]):
        with pytest.raises(InvalidRequest):
            split_headers(bad, [])
    with pytest.raises(BusinessRuleViolation):
        split_headers(["Host: evil"], [])

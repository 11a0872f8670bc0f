"""Outbound delivery to clinical systems: FHIR Subscriptions (rest-hook) and the push to the hospital's FHIR server.

A thin transport like the HTTP API and the event consumer: the fan-out turns committed changes (store/changes.py)
into numbered notifications and pushes, the senders do the HTTP (httpx) outside any write transaction and record
the result. Pure parts: `backoff` (retry schedule), `notify` (what a notification request is), `bundle` (the
transaction Bundle of a push). One duty (`duty.delivery_duty`) is what the worker runs.
"""

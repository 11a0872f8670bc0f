"""The event transport (Redis Streams): CloudEvents envelope, inbound consumer, outbox relay, dead letters, worker.

A thin transport like the HTTP API: it reads, calls the same service functions, acknowledges. Nothing here
decides anything clinical.
"""

"""The retry schedule (pure): exponential, capped, no jitter, so tests and receivers can predict it."""

from __future__ import annotations

from datetime import timedelta


def retry_delay(failures: int, base_ms: int, max_ms: int) -> timedelta:
    """The wait after the `failures`-th failure in a row (1 -> base, 2 -> 2 x base, ...), at most `max_ms`."""
    if failures < 1:
        return timedelta(0)
    return timedelta(milliseconds=min(max_ms, base_ms * 2 ** min(failures - 1, 30)))


def schedule(max_attempts: int, base_ms: int, max_ms: int) -> list[timedelta]:
    """The waits between the attempts of one notification (max_attempts - 1 of them); documented in README."""
    return [retry_delay(n, base_ms, max_ms) for n in range(1, max_attempts)]

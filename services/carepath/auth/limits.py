"""In-process abuse limits: failed authentications per client address per minute, requests per client per second.

Sliding windows of timestamps per key, bounded in keys so a flood of addresses cannot grow memory without end.
With several server processes each counts its own share — a limit per process, stated in the README.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

_MAX_KEYS = 50_000


class SlidingWindow:
    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._window = window_s
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _current(self, key: str) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > _MAX_KEYS:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        horizon = self._clock() - self._window
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def exceeded(self, key: str) -> bool:
        """Whether the key already used up its limit (recording nothing)."""
        return len(self._current(key)) >= self.limit

    def record(self, key: str) -> None:
        self._current(key).append(self._clock())

    def allow(self, key: str) -> bool:
        """Record one event unless over the limit; False when over it."""
        events = self._current(key)
        if len(events) >= self.limit:
            return False
        events.append(self._clock())
        return True

"""How many long-polls may be open at once (issue 15): each ``GET /api/v1/events?wait=`` holds a server
thread for up to 25 s, and USSD, SMS and callbacks share those threads. 40 polls from one viewer token
once took a USSD hop from 7 ms to 23 s. So a principal may hold ``per_principal`` waits and the process
``total`` (a quarter of its threads by default); past either, the caller is told to come back
(429, Retry-After) instead of taking a thread. Flask-free; one gate per app (on its Services)."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from .ratelimit import RateLimited

RETRY_AFTER_S = 2


class TooManyLongPolls(RateLimited):
    """Past the cap: come back after Retry-After (the desktop's poller does), or poll with wait=0."""

    code = "too_many_long_polls"


class LongPollGate:
    """Counts open long-polls per principal and in all; ``slot`` takes one or raises TooManyLongPolls."""

    def __init__(self, *, per_principal: int, total: int):
        self.per_principal = per_principal
        self.total = total
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())

    @contextmanager
    def slot(self, who: str):
        """Hold one of who's places for the length of the with block."""
        self._enter(who)
        try:
            yield
        finally:
            self._leave(who)

    def _enter(self, who: str) -> None:
        with self._lock:
            mine, everyone = self._open.get(who, 0), sum(self._open.values())
            if mine >= self.per_principal:
                raise TooManyLongPolls(f"This token already has {mine} long-polls open (at most "
                                       f"{self.per_principal}); retry, or poll with wait=0.", RETRY_AFTER_S)
            if everyone >= self.total:
                raise TooManyLongPolls(f"The gateway has {everyone} long-polls open (at most {self.total}); "
                                       "retry, or poll with wait=0.", RETRY_AFTER_S)
            self._open[who] = mine + 1

    def _leave(self, who: str) -> None:
        with self._lock:
            left = self._open.get(who, 1) - 1
            if left:
                self._open[who] = left
            else:
                self._open.pop(who, None)

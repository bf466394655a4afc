"""Fixed-window rate limits counted in the database, so every gateway process shares them."""
from __future__ import annotations

import time
from dataclasses import dataclass

from shared.db import retry_locked, write_tx
from shared.db.prepared import Prepared
from shared.errors import LipaError
from shared.models import RateLimitBucket


class RateLimited(LipaError):
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    requests: int
    window_s: int


@retry_locked
def hit(bucket: str, limit: Limit, *, now: float | None = None) -> None:
    """Count one request in its window; RateLimited (with Retry-After) once over the limit."""
    now = time.time() if now is None else now
    window = int(now // limit.window_s) * limit.window_s
    with write_tx():
        (RateLimitBucket.insert(bucket=bucket[:160], window_start=window, hits=1)
         .on_conflict(conflict_target=[RateLimitBucket.bucket, RateLimitBucket.window_start],
                      update={RateLimitBucket.hits: RateLimitBucket.hits + 1})
         .execute())
        hits = RateLimitBucket.get(RateLimitBucket.bucket == bucket[:160],
                                   RateLimitBucket.window_start == window).hits
    if hits > limit.requests:
        _refuse(window, limit, now)


def refuse_if_over(bucket: str, limit: Limit, *, now: float | None = None) -> None:
    """RateLimited when the bucket's window already holds ``limit.requests`` hits, without counting this
    request (failed bearer tokens: counted only when they fail, refused before the next one is checked)."""
    now = time.time() if now is None else now
    window = int(now // limit.window_s) * limit.window_s
    if _hits(bucket, window) >= limit.requests:
        _refuse(window, limit, now)


def _refuse(window: int, limit: Limit, now: float):
    retry_after = max(1, int(window + limit.window_s - now))
    raise RateLimited(f"Too many requests; retry in {retry_after} s.", retry_after)


def over(bucket: str, limit: Limit, *, now: float | None = None) -> bool:
    """Whether the current window is already over the limit (counts nothing: for the right token)."""
    now = time.time() if now is None else now
    window = int(now // limit.window_s) * limit.window_s
    return _hits(bucket, window) > limit.requests


# Read on every callback and staff request (built once: see shared.db.prepared).
_HITS = Prepared(lambda p: RateLimitBucket.select(RateLimitBucket.hits)
                 .where(RateLimitBucket.bucket == p[0], RateLimitBucket.window_start == p[1]),
                 RateLimitBucket.bucket, RateLimitBucket.window_start)


def _hits(bucket: str, window: int) -> int:
    """The window's count so far (0 when nothing was counted in it)."""
    return _HITS.scalar(bucket[:160], window) or 0


def prune(older_than_s: int = 86400, *, now: float | None = None) -> int:
    """Old windows are useless: the retention job drops them."""
    cutoff = (time.time() if now is None else now) - older_than_s
    return RateLimitBucket.delete().where(RateLimitBucket.window_start < cutoff).execute()

"""Login failures counted per username and per client address, with locks that grow (Flask-free).

Only failures count, so an office of staff behind one address signing in all day is never refused; a
success clears the username's count. Past a few free failures each further one locks the username (or
the address) for twice as long as the last, up to a ceiling, and a quiet spell forgives the count:

* username: 5 free, then 30 s, 60 s, 2 min … at most 15 min; forgotten after an hour without failures.
  The ceiling keeps an attacker who guesses at a staff member's name from locking them out for long.
* address: 20 free, then 60 s, 2 min … at most 1 h; forgotten after an hour. An attacker spraying many
  usernames from one address is slowed however many names they try.

Counted in the database (LoginFailure), so every gateway process shares the counts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from shared.db import for_update, retry_locked, write_tx
from shared.models import LoginFailure

from .ratelimit import RateLimited


@dataclass(frozen=True)
class Rule:
    free: int  # failures before the first lock
    first_lock_s: int
    max_lock_s: int
    forget_after_s: int

    def lock_for(self, failures: int) -> int:
        """Seconds to lock after this many failures (0 while still free)."""
        over = failures - self.free
        if over <= 0:
            return 0
        return min(self.max_lock_s, self.first_lock_s * 2 ** min(over - 1, 20))


USERNAME = Rule(free=5, first_lock_s=30, max_lock_s=900, forget_after_s=3600)
ADDRESS = Rule(free=20, first_lock_s=60, max_lock_s=3600, forget_after_s=3600)


def _keys(username: str, address: str) -> list[tuple[str, Rule]]:
    return [(f"user:{str(username).strip().lower()[:64]}", USERNAME), (f"addr:{address[:64]}", ADDRESS)]


def check(username: str, address: str, *, now: float | None = None) -> None:
    """RateLimited (with Retry-After) while the username or the address is locked; before the password
    is even checked, so a locked account cannot be guessed at."""
    now = time.time() if now is None else now
    keys = [key for key, _ in _keys(username, address)]
    locked = [row.locked_until for row in LoginFailure.select().where(LoginFailure.key.in_(keys))
              if row.locked_until > now]
    if locked:
        retry_after = max(1, int(max(locked) - now + 0.999))
        raise RateLimited(f"Too many failed sign-ins; retry in {retry_after} s.", retry_after)


@retry_locked
def failed(username: str, address: str, *, now: float | None = None) -> None:
    """Count one failure against the username and the address, and lock them when past their rule."""
    now = time.time() if now is None else now
    with write_tx():
        for key, rule in _keys(username, address):
            LoginFailure.insert(key=key).on_conflict_ignore().execute()  # no race between processes
            row = for_update(LoginFailure.select().where(LoginFailure.key == key)).get()
            failures = 1 if now - row.last_failure_at > rule.forget_after_s else row.failures + 1
            lock = rule.lock_for(failures)
            (LoginFailure.update(failures=failures, last_failure_at=now,
                                 locked_until=now + lock if lock else row.locked_until)
             .where(LoginFailure.id == row.id).execute())


def succeeded(username: str) -> None:
    """A correct password clears the username's count (never the address's: one good account must not
    wipe out the failures an address spent on others)."""
    key = _keys(username, "")[0][0]
    with write_tx():
        LoginFailure.delete().where(LoginFailure.key == key).execute()


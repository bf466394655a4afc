"""Where the Daraja access token is shared: the database across processes, memory for unit use.

Both stores speak naive UTC for ``expires_at`` (the project's column convention); aware
datetimes given to ``put`` are converted.

``DbTokenStore.fetch_lock()`` makes fetching a new token a one-process-at-a-time affair: N gateway
processes that find no usable token at the same moment (a cold start, or Daraja refusing the old one)
queue on it, and each one after the first finds the token just stored instead of calling OAuth again.
"""
from __future__ import annotations

import logging
import threading
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone

import peewee

from shared.db import db, is_sqlite, write_tx
from shared.models import ProviderToken

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: there each process may fetch its own token
    fcntl = None

log = logging.getLogger(__name__)
UTC = timezone.utc  # noqa: UP017 - setup.cfg still allows Python 3.10
FETCH_LOCK_KEY = 0x4C495054  # PostgreSQL advisory lock id ("LIPT")


def _naive_utc(value: datetime) -> datetime:
    """Naive UTC, whatever we were given, so comparisons never mix kinds."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class DbTokenStore:
    """One ProviderToken row per provider, so every gateway process reuses one token."""

    def __init__(self, name: str = "daraja"):
        self.name = name

    def get(self) -> tuple[str, datetime] | None:
        """The stored token and its naive-UTC expiry, or None."""
        row = ProviderToken.get_or_none(ProviderToken.name == self.name)
        if row is None:
            return None
        return row.token, _naive_utc(row.expires_at)

    def put(self, token: str, expires_at: datetime) -> None:
        """Insert or replace in one statement: no read-then-write race between processes."""
        expires_at = _naive_utc(expires_at)
        with write_tx():
            (
                ProviderToken.insert(name=self.name, token=token, expires_at=expires_at)
                .on_conflict(
                    conflict_target=[ProviderToken.name],
                    update={ProviderToken.token: token, ProviderToken.expires_at: expires_at},
                )
                .execute()
            )

    @contextmanager
    def fetch_lock(self):
        """Held around "read the store again, else fetch and store": one process fetches, the others wait
        (at most one OAuth call) and then read its token. Like the store, an optimisation: when the lock
        cannot be taken (database away) the caller fetches without it."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self._locked())
            except (peewee.PeeweeException, OSError) as exc:
                log.warning("Daraja token fetch lock unavailable (%s); fetching without it", type(exc).__name__)
            yield

    @staticmethod
    @contextmanager
    def _locked():
        """PostgreSQL: an advisory lock scoped to a transaction (released by commit, rollback or a lost
        connection). SQLite, one host by definition: a file lock beside the database, because its write
        lock held over an HTTP call would stall every writer."""
        if is_sqlite():
            with _file_lock(f"{db.obj.database}.oauth-lock"):
                yield
            return
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (FETCH_LOCK_KEY,))
            yield


@contextmanager
def _file_lock(path: str):
    """An exclusive flock on path (created if missing) for the duration of the block."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MemoryTokenStore:
    """The same interface in memory, for tests and single-process tools."""

    def __init__(self):
        self._lock = threading.Lock()
        self._value: tuple[str, datetime] | None = None

    def get(self) -> tuple[str, datetime] | None:
        """The stored token and its naive-UTC expiry, or None."""
        with self._lock:
            return self._value

    def put(self, token: str, expires_at: datetime) -> None:
        """Replace the stored token."""
        with self._lock:
            self._value = (token, _naive_utc(expires_at))

"""Where the Daraja access token is shared: the database across processes, memory for unit use.

Both stores speak naive UTC for ``expires_at`` (the project's column convention); aware
datetimes given to ``put`` are converted.
"""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from shared.db import write_tx
from shared.models import ProviderToken

UTC = timezone.utc  # noqa: UP017 - setup.cfg still allows Python 3.10


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

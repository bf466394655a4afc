"""What the app remembers between runs (the gateway URL and the last username), behind a tiny store interface.

The GUI backs it with QSettings (organisation "Lipa", application "Lipa Admin"); tests use MemoryStore,
scripts may use JsonFileStore. Passwords and tokens are never remembered.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
GATEWAY_URL, LAST_USERNAME = "gateway_url", "last_username"


class SettingsStore(Protocol):
    """Strings by key; the GUI's QSettings adapter and the stores below all fit."""

    def get(self, key: str, default: str = "") -> str: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryStore:
    """Forgets everything at exit: for tests and --screenshot runs."""

    def __init__(self, values: dict | None = None):
        self.values = dict(values or {})

    def get(self, key: str, default: str = "") -> str:
        return str(self.values.get(key, default))

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class JsonFileStore:
    """A JSON object in a file, rewritten on every change (a handful of keys)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, default: str = "") -> str:
        return str(self._load().get(key, default))

    def set(self, key: str, value: str) -> None:
        data = self._load()
        data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2))


class AppSettings:
    """Typed access to the remembered values."""

    def __init__(self, store: SettingsStore):
        self.store = store

    @property
    def gateway_url(self) -> str:
        return self.store.get(GATEWAY_URL, DEFAULT_GATEWAY_URL) or DEFAULT_GATEWAY_URL

    @property
    def last_username(self) -> str:
        return self.store.get(LAST_USERNAME, "")

    def remember_login(self, gateway_url: str, username: str) -> None:
        """After a successful login only, so a typo in the URL is not kept."""
        self.store.set(GATEWAY_URL, gateway_url.rstrip("/"))
        self.store.set(LAST_USERNAME, username)

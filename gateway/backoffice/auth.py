"""Staff accounts, login tokens and merchant API keys. Flask-free: the routes call these.

Passwords are hashed with scrypt (memory-hard, in the standard library); tokens and keys are random,
shown once, and stored only as SHA-256 digests, so a database leak reveals none of them.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import peewee

from shared.db import write_tx
from shared.errors import InvalidInput, LipaError
from shared.mailaddr import normalize_email
from shared.models import ApiKey, Merchant, Staff, StaffToken
from shared.timeutil import utcnow

from .passwords import check_password_rule

log = logging.getLogger(__name__)
ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_TTL = timedelta(hours=12)  # the absolute lifetime; LIPA_SESSION_IDLE_S ends an unused one sooner
IDLE_DEFAULT_S = 1800
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most once a minute per session
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # the production cost: hashes written as scrypt$salt$digest
HASH_COST = _SCRYPT  # what a new hash costs; only the test suite lowers it (tests/conftest.py), never a setting


class Unauthorized(LipaError):
    http_status = 401
    code = "unauthorized"


class Forbidden(LipaError):
    http_status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff member (with a role) or a merchant system."""

    kind: str  # staff, merchant
    id: int
    name: str
    role: str = ""
    session: int | None = field(default=None, compare=False)  # the StaffToken behind a staff call

    @property
    def actor(self) -> str:
        """For people reading the audit log: staff:amina, merchant:Acme."""
        return f"{self.kind}:{self.name}"

    @property
    def scope(self) -> str:
        """For keys that must never collide: merchant:7 (a name may contain the separator, an id cannot)."""
        return f"{self.kind}:{self.id}"

    def require_reader(self) -> None:
        """Merchant keys (which then see only their own rows) and staff of any role may read."""
        if self.kind != "merchant":
            self.require("viewer")

    def require(self, role: str) -> None:
        """Staff of at least `role` (viewer < operator < admin); merchants are never staff."""
        if self.kind != "staff" or RANK[self.role] < RANK[role]:
            log.warning("%s (%s) refused: the route needs the %s role", self.actor, self.role or self.kind, role)
            raise Forbidden(f"This needs the {role} role.")


def hash_password(password: str, *, cost: dict | None = None) -> str:
    """scrypt$salt$digest at the production cost. A hash made at another ``cost`` names it,
    scrypt:n:r:p$salt$digest, so any process checks any hash (the test suite hashes cheaply: tests/conftest.py)."""
    cost = cost or HASH_COST
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **cost)
    scheme = "scrypt" if cost == _SCRYPT else f"scrypt:{cost['n']}:{cost['r']}:{cost['p']}"
    return scheme + "$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), **_cost_of(scheme, len(expected)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _cost_of(scheme: str, dklen: int) -> dict:
    """The scrypt parameters a stored hash was made with: the production ones, or those it names."""
    if scheme == "scrypt":
        return _SCRYPT
    name, n, r, p = scheme.split(":")
    if name != "scrypt":
        raise ValueError(f"not a scrypt hash: {name}")
    return {"n": int(n), "r": int(r), "p": int(p), "dklen": dklen}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_staff(username: str, password: str, role: str) -> Staff:
    """A new staff member (the create-staff command)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    if not username or len(username) > 64 or not username.replace(".", "").replace("_", "").isalnum():
        raise InvalidInput("username must be 1-64 letters, digits, dots or underscores", code="invalid_username")
    check_password_rule(password, username)
    try:
        with write_tx():
            return Staff.create(username=username, password_hash=hash_password(password), role=role)
    except peewee.IntegrityError:
        raise InvalidInput(f"staff member {username!r} already exists", code="staff_exists") from None


_DUMMY_HASHES: dict[tuple, str] = {}


def _dummy_hash() -> str:
    """A hash at the cost new hashes have (made once per cost), so an unknown username costs the same
    scrypt work as a known one."""
    key = tuple(sorted(HASH_COST.items()))
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hash_password("timing-equaliser")
    return _DUMMY_HASHES[key]


def verify_credentials(username: str, password: str) -> Staff:
    """The active staff member with this password; the same Unauthorized for every failure (and the same
    scrypt work, so the time taken does not say whether the username exists)."""
    staff = Staff.get_or_none(Staff.username == str(username)[:64])
    ok = check_password(str(password), staff.password_hash if staff else _dummy_hash())
    if not (staff and ok and staff.active):
        log.warning("API login refused: wrong username or password")  # neither is logged: either may be a secret
        raise Unauthorized("Wrong username or password.", code="invalid_credentials")
    return staff


def login(username: str, password: str, *, now=None) -> tuple[str, Staff, object]:
    """A fresh bearer token for valid credentials; the same answer for every failure."""
    staff = verify_credentials(username, password)
    token = "lps_" + secrets.token_urlsafe(32)
    now = now or utcnow()
    expires_at = now + TOKEN_TTL
    with write_tx():
        StaffToken.create(staff=staff, token_hash=_digest(token), expires_at=expires_at, created_at=now,
                          last_used_at=now)
    return token, staff, expires_at


def create_api_key(merchant_name: str, *, email: str | None = None) -> str:
    """A merchant key, printed once by create-api-key; ``email`` (--email) is where the merchant's daily
    settlement summary goes from now on (issue 16); without it, an address given before is kept."""
    name = merchant_name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("merchant name must be 1-100 characters", code="invalid_name")
    address = normalize_email(email) if email is not None else None
    key = "lpk_" + secrets.token_urlsafe(32)
    with write_tx():
        merchant, _ = Merchant.get_or_create(name=name)
        ApiKey.create(merchant=merchant, prefix=key[:12], key_hash=_digest(key))
        if address is not None:
            merchant.email = address
            merchant.save()
    return key


def authenticate(header: str | None, *, now=None, idle_s: int = IDLE_DEFAULT_S) -> Principal:
    """The caller behind `Authorization: Bearer …`: a live staff token (of an active member, used within
    the last ``idle_s`` seconds, younger than TOKEN_TTL) or an unrevoked merchant key. Read on every call,
    so logout, deactivate-staff and revoke-api-key take effect on the next request."""
    if not header or not header.startswith("Bearer ") or len(header) > 300:
        log.warning("API call without a bearer token refused")
        raise Unauthorized("Send Authorization: Bearer <token>.")
    secret = header[7:].strip()
    digest = _digest(secret)
    if secret.startswith("lpk_"):
        key = ApiKey.get_or_none(ApiKey.key_hash == digest, ApiKey.revoked == False)  # noqa: E712
        if key:
            return Principal("merchant", key.merchant_id, key.merchant.name)
    else:
        now = now or utcnow()
        row = StaffToken.get_or_none(StaffToken.token_hash == digest)
        if row and row.expires_at > now and row.staff.active and _still_fresh(row, now, idle_s):
            return Principal("staff", row.staff_id, row.staff.username, row.staff.role, session=row.id)
    log.warning("API call with an unknown, expired or revoked %s refused",  # the value itself never logged
                "API key" if secret.startswith("lpk_") else "token")
    raise Unauthorized("The token is invalid or has expired.")


def _still_fresh(row: StaffToken, now, idle_s: int) -> bool:
    """Used within the idle timeout; the use is recorded (at most once a minute, to spare the writes)."""
    last = row.last_used_at or row.created_at
    if now - last > timedelta(seconds=idle_s):
        return False
    if now - last >= TOUCH_EVERY:
        with write_tx():
            StaffToken.update(last_used_at=now).where(StaffToken.id == row.id).execute()
    return True

"""The Daraja HTTP client: OAuth token caching, STK push and STK query, with safe retries.

Only requests that never reached Daraja (or were throttled) are sent again; a timeout or an
unreadable answer after sending is ambiguous and is raised, because the push may have gone out.
Secrets (token, consumer secret, passkey, Password) are never logged; phones only masked.
"""
from __future__ import annotations

import base64
import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.errors import InvalidInput
from shared.money import MAX_AMOUNT, MIN_AMOUNT
from shared.phone import is_normalized, mask_phone
from shared.timeutil import nairobi_timestamp

from .errors import (
    DarajaBadResponse, DarajaError, DarajaTimeout, DarajaUnavailable, InvalidAccessToken, TransactionInProgress,
    error_from_response,
)
from .result_codes import is_undecided

log = logging.getLogger(__name__)
UTC = timezone.utc  # noqa: UP017 - setup.cfg still allows Python 3.10

OAUTH_PATH = "/oauth/v1/generate?grant_type=client_credentials"
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
REFRESH_MARGIN = timedelta(seconds=60)
FALLBACK_EXPIRES_IN = 600  # used only when Daraja sends an unreadable expires_in
TEXT_RE = re.compile(r"[A-Za-z0-9 -]+")


@dataclass(frozen=True)
class StkPushAccepted:
    """Daraja accepted the push for processing (accepted is not paid)."""

    merchant_request_id: str
    checkout_request_id: str
    customer_message: str
    raw: dict


@dataclass(frozen=True)
class StkQueryResult:
    """What an STK query said; ``pending`` when Daraja is still processing the push."""

    result_code: str | None
    result_desc: str
    pending: bool
    raw: dict


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: datetime  # aware UTC


def _aware(value: datetime) -> datetime:
    """Stores speak naive UTC; the client compares aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _check_text(name: str, value, limit: int, code: str) -> None:
    """Daraja silently mangles or refuses long/odd text; refuse it here with a clear reason."""
    if not isinstance(value, str) or not value or len(value) > limit or not TEXT_RE.fullmatch(value):
        got = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"{name} must be 1-{limit} letters, digits, spaces or hyphens (got {got}).", code=code)


def validate_push(phone, amount, account_reference, description, callback_url) -> None:
    """Refuse what Daraja would refuse (or truncate) before any HTTP call."""
    if type(amount) is not int or not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidInput(
            f"Amount must be a whole number of shillings from {MIN_AMOUNT} to {MAX_AMOUNT:,}.",
            code="invalid_amount",
        )
    if not is_normalized(phone):
        raise InvalidInput("Phone must be 2547XXXXXXXX or 2541XXXXXXXX.", code="invalid_phone")
    _check_text("AccountReference", account_reference, 12, "invalid_account_reference")
    _check_text("TransactionDesc", description, 13, "invalid_description")
    if not isinstance(callback_url, str) or not callback_url.startswith(("https://", "http://")):
        raise InvalidInput("CallBackURL must be an http(s) URL.", code="invalid_callback_url")


def _never_reached(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made, so Daraja cannot have seen the request."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


class DarajaClient:
    """One shortcode's view of Daraja; safe to share between threads."""

    def __init__(
        self, *, base_url: str, consumer_key: str, consumer_secret: str, shortcode: str, passkey: str,
        transaction_type: str = "CustomerPayBillOnline", till_number: str = "", token_store,
        session: requests.Session | None = None, timeout: tuple[float, float] = (3.05, 10.0),
        max_retries: int = 2, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
    ):
        if transaction_type not in TRANSACTION_TYPES:
            raise ValueError(f"transaction_type must be one of {', '.join(TRANSACTION_TYPES)}")
        if transaction_type == "CustomerBuyGoodsOnline" and not till_number:
            raise ValueError("till_number is required for CustomerBuyGoodsOnline")
        self.base_url = base_url.rstrip("/")
        self._auth = (consumer_key, consumer_secret)
        self.shortcode = str(shortcode)
        self._passkey = passkey
        self.transaction_type = transaction_type
        self.till_number = str(till_number)
        self.token_store = token_store
        self._own_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"DarajaClient(base_url={self.base_url!r}, shortcode={self.shortcode!r})"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def access_token(self, force: bool = False) -> str:
        """A valid bearer token; ``force`` treats the current one as rejected."""
        current = self._token
        return self._get_token(rejected=current.value if force and current else None, force=force)

    def _fresh(self, token: _Token | None, rejected: str | None) -> bool:
        """Usable for at least REFRESH_MARGIN more, and not the one Daraja just refused."""
        return bool(token) and token.value != rejected and self._now() < token.expires_at - REFRESH_MARGIN

    def _get_token(self, rejected: str | None = None, force: bool = False) -> str:
        """Cached, else shared store, else OAuth; the lock makes concurrent threads fetch once, and the
        store's fetch lock (when it has one) concurrent processes."""
        token = self._token
        if not force and self._fresh(token, rejected):
            return token.value
        with self._lock, self._fetch_lock():
            if not force and self._fresh(self._token, rejected):
                return self._token.value
            stored = self._read_store()
            if self._fresh(stored, rejected) and not (force and rejected is None):
                self._token = stored
                return stored.value
            self._token = self._fetch_token()
            self._write_store(self._token)
            return self._token.value

    def _fetch_lock(self):
        """The store's cross-process lock around read-else-fetch (DbTokenStore), or none."""
        lock = getattr(self.token_store, "fetch_lock", None)
        return lock() if lock is not None else contextlib.nullcontext()

    def _read_store(self) -> _Token | None:
        """Another process may have refreshed the token already; a store failure is not fatal."""
        try:
            found = self.token_store.get()
        except Exception as exc:  # noqa: BLE001 - the store is an optimisation, OAuth still works
            log.warning("Daraja token store read failed: %s", type(exc).__name__)
            return None
        return _Token(found[0], _aware(found[1])) if found else None

    def _write_store(self, token: _Token) -> None:
        """Share the new token; on failure this process still has it in memory."""
        try:
            self.token_store.put(token.value, token.expires_at)
        except Exception as exc:  # noqa: BLE001 - see _read_store
            log.warning("Daraja token store write failed: %s", type(exc).__name__)

    def _fetch_token(self) -> _Token:
        """GET the OAuth endpoint; nothing was pushed yet, so no failure here is ambiguous."""
        try:
            body = self._request("GET", OAUTH_PATH, auth=self._auth)
        except DarajaError as exc:
            exc.ambiguous = False
            if isinstance(exc, DarajaTimeout):
                raise DarajaUnavailable(f"OAuth: {exc.message}") from exc
            raise
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise DarajaBadResponse("OAuth answer has no access_token", body=body, ambiguous=False)
        try:
            expires_in = int(float(body.get("expires_in")))
        except (TypeError, ValueError):
            log.warning("Daraja OAuth expires_in unreadable; assuming %ds", FALLBACK_EXPIRES_IN)
            expires_in = FALLBACK_EXPIRES_IN
        log.info("fetched a new Daraja access token (expires in %ds)", expires_in)
        return _Token(value, self._now() + timedelta(seconds=expires_in))

    def _request(self, method: str, path: str, **kwargs) -> dict:
        """One HTTP exchange, transport failures and refusals mapped to typed errors."""
        try:
            resp = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            if _never_reached(exc):
                raise DarajaUnavailable(f"{path.split('?')[0]}: cannot connect ({type(exc).__name__})") from None
            raise DarajaTimeout(f"{path}: connection dropped after sending ({type(exc).__name__})") from None
        except requests.Timeout:
            raise DarajaTimeout(f"{path}: no answer in time (timeout={self.timeout})") from None
        except requests.RequestException as exc:
            raise DarajaBadResponse(f"{path}: {type(exc).__name__}") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if 200 <= resp.status_code < 300 and isinstance(body, dict):
            return body
        if 200 <= resp.status_code < 300:
            snippet = " ".join(resp.text.split())[:120]
            raise DarajaBadResponse(f"{path}: HTTP {resp.status_code} unreadable body {snippet!r}",
                                    daraja_status=resp.status_code)
        raise error_from_response(resp.status_code, body if isinstance(body, dict) else None, resp.text)

    def post(self, path: str, body: dict) -> dict:
        """POST with a bearer token: refresh once on a stale token, retry only safe failures."""
        rejected: str | None = None
        retries = 0
        while True:
            token = None
            try:
                token = self._get_token(rejected)
                headers = {"Authorization": f"Bearer {token}"}
                return self._request("POST", path, json=body, headers=headers)
            except InvalidAccessToken:
                if rejected is not None or token is None:
                    raise
                log.info("Daraja said the access token is invalid; refreshing once")
                rejected = token
            except DarajaError as exc:
                if not exc.should_retry or retries >= self.max_retries:
                    raise
                retries += 1
                delay = self.backoff * 2 ** (retries - 1) + random.uniform(0, self.backoff)
                log.warning("Daraja %s: %s; retry %d in %.2fs", path, exc.code, retries, delay)
                self._sleep(delay)

    def password(self, timestamp: str) -> str:
        """Daraja's per-request password: base64(shortcode + passkey + timestamp)."""
        return base64.b64encode(f"{self.shortcode}{self._passkey}{timestamp}".encode()).decode()

    def _signed(self) -> dict:
        """BusinessShortCode, Password and Timestamp, the timestamp shared by both."""
        timestamp = nairobi_timestamp(self._now())
        return {"BusinessShortCode": self.shortcode, "Password": self.password(timestamp), "Timestamp": timestamp}

    def stk_push(self, *, phone: str, amount: int, account_reference: str, description: str,
                 callback_url: str) -> StkPushAccepted:
        """Ask Daraja to prompt the customer's phone for their PIN."""
        validate_push(phone, amount, account_reference, description, callback_url)
        party_b = self.till_number if self.transaction_type == "CustomerBuyGoodsOnline" else self.shortcode
        body = {
            **self._signed(),
            "TransactionType": self.transaction_type,
            "Amount": amount,
            "PartyA": phone,
            "PartyB": party_b,
            "PhoneNumber": phone,
            "CallBackURL": callback_url,
            "AccountReference": account_reference,
            "TransactionDesc": description,
        }
        answer = self.post(STK_PUSH_PATH, body)
        checkout_id = answer.get("CheckoutRequestID")
        if str(answer.get("ResponseCode")) != "0" or not checkout_id:
            raise DarajaBadResponse(
                f"STK push answer not accepted: ResponseCode={answer.get('ResponseCode')!r}", body=answer
            )
        log.info("STK push to %s for KES %d accepted: %s", mask_phone(phone), amount, checkout_id)
        return StkPushAccepted(
            merchant_request_id=str(answer.get("MerchantRequestID") or ""),
            checkout_request_id=str(checkout_id),
            customer_message=str(answer.get("CustomerMessage") or ""),
            raw=answer,
        )

    def transaction_status(self, *, initiator, transaction_id: str, result_url: str, timeout_url: str,
                           remarks: str = "Status check", occasion: str = ""):
        """Ask Daraja what became of an M-Pesa receipt (Transaction Status); only an acknowledgement
        comes back here, the verdict is POSTed to result_url later. Raises the typed Daraja errors."""
        from .b2c import transaction_status  # b2c builds every asynchronous body; it imports nothing of ours

        return transaction_status(self, initiator=initiator, transaction_id=transaction_id, party_a=self.shortcode,
                                  result=result_url, timeout=timeout_url, remarks=remarks, occasion=occasion)

    def stk_query(self, checkout_request_id: str) -> StkQueryResult:
        """Ask how a push ended; "being processed" (500.001.1001) and an undecided ResultCode (4999 "still
        under processing", or one not in result_codes) are answers (pending), not failures."""
        body = {**self._signed(), "CheckoutRequestID": checkout_request_id}
        try:
            answer = self.post(STK_QUERY_PATH, body)
        except TransactionInProgress as exc:
            return StkQueryResult(None, str(exc.body.get("errorMessage") or exc.message), True, exc.body)
        if answer.get("ResultCode") in (None, ""):
            raise DarajaBadResponse("STK query answer has no ResultCode", body=answer)
        code = str(answer["ResultCode"]).strip()
        return StkQueryResult(
            result_code=code,
            result_desc=str(answer.get("ResultDesc") or ""),
            pending=is_undecided(code),
            raw=answer,
        )

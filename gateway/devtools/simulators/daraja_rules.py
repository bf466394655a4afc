"""Daraja's rules as the simulator enforces them: codes, messages, outcome table, body validation
and the STK callback shape (see daraja.py for the outcome table in prose)."""
from __future__ import annotations

import base64
import re
import secrets
import string
import threading
from dataclasses import dataclass

from shared.timeutil import nairobi_timestamp

SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
PAID_DESC = "The service request is processed successfully."
ACCEPTED = "Success. Request accepted for processing"
LOCKED = "Unable to lock subscriber, a transaction is already in process for the current subscriber"
PROCESSING = "The transaction is being processed"
TOKEN_TTL = 3599
OUTCOMES: dict[str, tuple[int | str, str]] = {
    "paid": (0, PAID_DESC),
    "insufficient": (1, "The balance is insufficient for the transaction."),
    "wrong_pin": (2001, "The initiator information is invalid."),
    "cancelled": (1032, "Request cancelled by user"),
    "timeout": (1037, "DS timeout user cannot be reached"),
    "no_callback": (0, PAID_DESC),
    "duplicate": (0, PAID_DESC),
    "late": (0, PAID_DESC),
    "string_code": ("SFC_IC0003", "Operator does not exist"),
}
AMOUNT_OUTCOMES = {51: "insufficient", 52: "wrong_pin", 53: "cancelled", 54: "timeout",
                   55: "no_callback", 56: "duplicate", 57: "late", 58: "string_code"}
FAULTS = {
    "spike_arrest": (500, "500.003.02", "Spike arrest violation"),
    "quota": (500, "500.003.03", "Quota violation"),
    "internal": (500, "500.003.1001", "Internal Server Error"),
    "invalid_token": (404, "404.001.03", "Invalid Access Token"),
    "merchant": (500, "500.001.1001", "Merchant does not exist"),
    "garbage": None,
    "slow": None,
}
FAULT_TARGETS = ("stk_push", "stk_query", "oauth", "reversal", "b2c", "transaction_status")
PHONE_RE = re.compile(r"254[71]\d{8}")
PUSH_FIELDS = ("BusinessShortCode", "Password", "Timestamp", "TransactionType", "Amount", "PartyA",
               "PartyB", "PhoneNumber", "CallBackURL", "AccountReference", "TransactionDesc")
QUERY_FIELDS = ("BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID")
TRANSACTION_TYPES = {"CustomerPayBillOnline", "CustomerBuyGoodsOnline"}


def expected_password(shortcode, passkey: str, timestamp) -> str:
    """Daraja's Password: base64(shortcode + passkey + timestamp), as clients must build it."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def digits(n: int) -> str:
    """n random decimal digits, for Daraja-looking ids."""
    return "".join(secrets.choice(string.digits) for _ in range(n))


def request_id() -> str:
    """A Daraja-looking request/merchant id: 12345-12345678-1."""
    return f"{digits(5)}-{digits(8)}-1"


def new_checkout_id(taken) -> str:
    """A fresh CheckoutRequestID (ws_CO_ + Nairobi timestamp + digits) not in `taken`."""
    while True:
        checkout_id = f"ws_CO_{nairobi_timestamp()}{digits(8)}"
        if checkout_id not in taken:
            return checkout_id


def new_receipt(taken: set) -> str:
    """A fresh 10-character upper-case M-Pesa receipt number, added to `taken`."""
    while True:
        receipt = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))
        if receipt not in taken:
            taken.add(receipt)
            return receipt


def as_amount(value) -> int | None:
    """Whole shillings from an int, integral float or digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _first_missing(body: dict, names) -> str | None:
    return next((name for name in names if body.get(name) in (None, "")), None)


def _credential_checks(body: dict, passkey: str):
    ts = str(body["Timestamp"])
    return (("BusinessShortCode", str(body["BusinessShortCode"]).isdigit()),
            ("Timestamp", re.fullmatch(r"\d{14}", ts) is not None),
            ("Password", body["Password"] == expected_password(body["BusinessShortCode"], passkey, ts)))


def invalid_push_field(body: dict, passkey: str) -> str | None:
    """The first field Daraja would call invalid in an STK push body, or None when it is valid."""
    missing = _first_missing(body, PUSH_FIELDS)
    if missing:
        return missing
    amount = as_amount(body["Amount"])
    checks = _credential_checks(body, passkey) + (
        ("TransactionType", body["TransactionType"] in TRANSACTION_TYPES),
        ("Amount", amount is not None and 1 <= amount <= 250_000),
        ("PartyA", PHONE_RE.fullmatch(str(body["PartyA"])) is not None),
        ("PartyB", str(body["PartyB"]).isdigit()),
        ("PhoneNumber", PHONE_RE.fullmatch(str(body["PhoneNumber"])) is not None),
        ("CallBackURL", re.fullmatch(r"https?://\S+", str(body["CallBackURL"])) is not None),
        ("AccountReference", len(str(body["AccountReference"])) <= 12),
        ("TransactionDesc", len(str(body["TransactionDesc"])) <= 13))
    return next((name for name, ok in checks if not ok), None)


def invalid_query_field(body: dict, passkey: str) -> str | None:
    """The first field Daraja would call invalid in an STK query body, or None."""
    missing = _first_missing(body, QUERY_FIELDS)
    return missing or next((n for n, ok in _credential_checks(body, passkey) if not ok), None)


@dataclass
class Push:
    """One accepted STK push and what the simulator will do with it."""
    checkout_id: str
    merchant_id: str
    phone: str
    amount: int
    account: str
    callback_url: str
    outcome: str
    decided_at: float
    receipt: str | None = None
    done: bool = False
    posts: int = 0
    timer: threading.Timer | None = None

    def summary(self, decided: bool) -> dict:
        """What GET /simulator/requests shows for this push."""
        return {"CheckoutRequestID": self.checkout_id, "MerchantRequestID": self.merchant_id,
                "phone": self.phone, "amount": self.amount, "account": self.account,
                "callback_url": self.callback_url, "outcome": self.outcome, "receipt": self.receipt,
                "decided": decided, "callbacks_posted": self.posts}


def stk_callback_body(push: Push) -> dict:
    """The documented {"Body": {"stkCallback": ...}} for a push's outcome."""
    code, desc = OUTCOMES[push.outcome]
    callback = {"MerchantRequestID": push.merchant_id, "CheckoutRequestID": push.checkout_id,
                "ResultCode": code, "ResultDesc": desc}
    if code == 0:
        callback["CallbackMetadata"] = {"Item": [
            {"Name": "Amount", "Value": float(push.amount)},
            {"Name": "MpesaReceiptNumber", "Value": push.receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": int(nairobi_timestamp())},
            {"Name": "PhoneNumber", "Value": int(push.phone)}]}
    return {"Body": {"stkCallback": callback}}

"""C2B (customer pays the paybill from the M-Pesa menu), no Flask: validation only reads; a stored confirmation
is applied idempotently: one TransID (= receipt) is credited once, to the STK payment waiting for it, else to a
new COMPLETED payment of channel "c2b"."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import peewee

from shared import safejson
from shared.db import for_update, retry_locked, write_tx
from shared.errors import InvalidInput
from shared.models import Payment, PaymentRequest
from shared.money import MAX_AMOUNT, MIN_AMOUNT
from shared.phone import mask_phone, normalize_phone
from shared.states import PaymentStatus, RequestStatus
from shared.text import clean
from shared.timeutil import utcnow

from ..ingest import inbox
from ..payments import unexpected
from ..payments.received import Received, record_received
from ..payments.transitions import flag, raise_alert, record, transition

log = logging.getLogger(__name__)
SOURCE = "daraja.c2b"
ACTOR = "c2b"
S = PaymentStatus
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
CONFIRMED = {"ResultCode": 0, "ResultDesc": "Success"}
INVALID_MSISDN, INVALID_ACCOUNT, INVALID_AMOUNT, OTHER_ERROR = "C2B00011", "C2B00012", "C2B00013", "C2B00016"
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9-]{1,20}$", re.ASCII)
HASH_RE = re.compile(r"^[0-9a-fA-F]{64}$", re.ASCII)
MASKED_RE = re.compile(r"^[0-9 ]{3,}\*[0-9* ]*$", re.ASCII)  # "2547 ***** 126", as some Daraja versions send
TRANS_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$", re.ASCII)
# STK payments without a receipt a C2B may be the money of, best first (COMPLETED: confirmed by STK query).
WAITING = {S.PENDING.value: 0, S.PROCESSING.value: 0, S.COMPLETED.value: 1, S.EXPIRED.value: 2}
MATCH_WINDOW = timedelta(hours=24)
MAX_RECORDABLE = 10**9  # fits the amount column; M-Pesa itself stops at 250,000


@dataclass(frozen=True)
class Payer:
    """Who paid: a number when Daraja sends one, else only the SHA-256 hash it sends instead."""

    phone: str | None
    payer_hash: str | None
    readable: bool  # a number, a hash or a masked number; False for anything else


@dataclass(frozen=True)
class C2BPayment:
    trans_id: str
    raw_amount: object
    amount: int | None  # whole shillings; None when Daraja sent a fraction
    account: str  # BillRefNumber, stripped and upper-cased, at most 20 characters kept
    account_ok: bool  # the whole BillRefNumber is an account we accept (1-20 letters, digits, hyphens)
    payer: Payer
    payer_name: str
    raw: dict


def load_body(body: bytes | str) -> dict:
    """A JSON object, or InvalidInput."""
    try:
        data = safejson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Body is not JSON.", code="malformed_c2b") from None
    if not isinstance(data, dict):
        raise InvalidInput("Body must be a JSON object.", code="malformed_c2b")
    return data


def read_amount(value) -> Decimal | None:
    """TransAmount ("10.00", 10, "1,000.00") as a Decimal; None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def read_payer(value) -> Payer:
    """MSISDN: a Kenyan number, a 64-hex SHA-256 of one (production), or a masked number."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if HASH_RE.match(text):
        return Payer(None, text.lower(), True)
    try:
        phone = normalize_phone(text)
    except InvalidInput:
        return Payer(None, None, bool(MASKED_RE.match(text)))
    return Payer(phone, phone_hash(phone), True)


def phone_hash(phone: str) -> str:
    """How Daraja hides a number (SHA-256 hex of 2547…): lets a hashed C2B be linked to our phone."""
    return hashlib.sha256(phone.encode()).hexdigest()


def bill_ref(data: dict) -> str:
    """BillRefNumber as text (a number is tolerated), stripped."""
    value = data.get("BillRefNumber")
    return clean(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def _name(data: dict) -> str:
    parts = (data.get(key) for key in ("FirstName", "MiddleName", "LastName"))
    return clean(" ".join(p for p in parts if isinstance(p, str)), 100)


def parse_c2b(body: bytes | str) -> C2BPayment:
    """A confirmation: TransID and a positive TransAmount are required; the rest is kept as sent."""
    data = load_body(body)
    trans_id = data.get("TransID")
    if not isinstance(trans_id, str) or not TRANS_ID_RE.match(trans_id.strip()):
        raise InvalidInput("TransID is missing or invalid.", code="malformed_c2b")
    amount = read_amount(data.get("TransAmount"))
    if amount is None or not 0 < amount < MAX_RECORDABLE:
        raise InvalidInput("TransAmount is missing or not a positive amount.", code="malformed_c2b")
    account = bill_ref(data)
    return C2BPayment(
        trans_id=trans_id.strip(), raw_amount=data.get("TransAmount"),
        amount=int(amount) if amount == amount.to_integral_value() else None, account=account.upper()[:20],
        account_ok=bool(ACCOUNT_RE.match(account)), payer=read_payer(data.get("MSISDN")), payer_name=_name(data),
        raw=data,
    )


def request_for(account: str) -> PaymentRequest | None:
    """The payment request whose code the customer typed as the account, whatever its status."""
    text = account.strip()
    return PaymentRequest.get_or_none(PaymentRequest.code == text) if text.isdigit() and len(text) <= 12 else None


def request_open(req: PaymentRequest) -> bool:
    return req.status == RequestStatus.OPEN.value and not (req.expires_at and req.expires_at <= utcnow())


def decide_validation(body: bytes | str) -> dict:
    """Accept or reject before M-Pesa takes the money; reads only, so it answers in milliseconds."""
    try:
        data = load_body(body)
    except InvalidInput:
        return _rejected(OTHER_ERROR, "malformed body")
    code, why = _validation_problem(data)
    if code:
        return _rejected(code, why, data)
    log.info("C2B validation %s accepted", str(data.get("TransID"))[:32])
    return dict(ACCEPTED)


def _validation_problem(data: dict) -> tuple[str | None, str]:
    """(rejection code, reason) or (None, '') for a payment we can take."""
    if not read_payer(data.get("MSISDN")).readable:
        return INVALID_MSISDN, "MSISDN is neither a number nor a hash"
    amount = read_amount(data.get("TransAmount"))
    if amount is None or amount != amount.to_integral_value() or not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        return INVALID_AMOUNT, f"amount {data.get('TransAmount')!r} is not whole shillings in range"
    account = bill_ref(data)
    req = request_for(account)
    if req is None:
        return (None, "") if ACCOUNT_RE.match(account) else (INVALID_ACCOUNT, "account not acceptable")
    if not request_open(req):
        return INVALID_ACCOUNT, f"request {req.code} is {req.status}"
    if req.amount is not None and req.amount != int(amount):
        return INVALID_AMOUNT, f"request {req.code} is for {req.amount}"
    return None, ""


def _rejected(code: str, why: str, data: dict | None = None) -> dict:
    trans_id = str((data or {}).get("TransID"))[:32]
    log.info("C2B validation %s rejected with %s: %s", trans_id, code, why)
    return {"ResultCode": code, "ResultDesc": "Rejected"}


def apply_c2b(inbox_id: int) -> str:
    """Apply one stored confirmation: APPLIED, FLAGGED, DUPLICATE or REJECTED; safe to run twice."""
    try:
        return _apply(inbox_id)
    except peewee.IntegrityError:
        # The receipt was credited concurrently (an STK callback): once more, it is now a duplicate.
        return _apply(inbox_id)


@retry_locked
def _apply(inbox_id: int) -> str:
    with write_tx():
        row, c2b, done = inbox.open_row(inbox_id, parse_c2b)
        if done:
            return done
        status, note, payment = _credit(c2b)
        inbox.mark(row, status, note, payment=payment)
        return status


def _credit(c2b: C2BPayment) -> tuple[str, str, Payment]:
    """The same receipt is the same money; else complete the STK payment waiting for it; else a new one."""
    existing = for_update(Payment.select().where(Payment.mpesa_receipt == c2b.trans_id)).first()
    if existing is not None:
        return _duplicate(existing, c2b)
    waiting = _waiting_stk_payment(c2b)
    if waiting is not None:
        _complete_waiting(waiting, c2b)
        return "APPLIED", f"credited to STK payment {waiting.reference}", waiting
    payment = _create_completed(c2b)
    status = "FLAGGED" if payment.flagged else "APPLIED"
    return status, payment.flag_reason or f"created C2B payment {payment.reference}", payment


def _duplicate(existing: Payment, c2b: C2BPayment) -> tuple[str, str, Payment]:
    note = f"receipt {c2b.trans_id} already credited to {existing.reference}"
    record(existing, "c2b_duplicate", actor=ACTOR, reason=f"also arrived as C2B: {note}", payload=c2b.raw)
    if c2b.amount != existing.amount:
        flag(existing, f"C2B amount {c2b.raw_amount!r} differs for receipt {c2b.trans_id}", actor=ACTOR,
             payload=c2b.raw, alert_kind="callback_mismatch")
    return "DUPLICATE", note, existing


def _waiting_stk_payment(c2b: C2BPayment) -> Payment | None:
    """An STK payment (same payer, amount, account) still without a receipt: the C2B is its money."""
    if c2b.amount is None or c2b.payer.payer_hash is None or not c2b.account:
        return None
    codes = PaymentRequest.select(PaymentRequest.id).where(PaymentRequest.code == c2b.account)
    query = Payment.select().where(
        Payment.mpesa_receipt.is_null(), Payment.amount == c2b.amount, Payment.status.in_(list(WAITING)),
        Payment.channel != "c2b", Payment.created_at >= utcnow() - MATCH_WINDOW,
        (Payment.account == c2b.account) | Payment.request.in_(codes))
    if c2b.payer.phone:
        query = query.where(Payment.phone_hash == c2b.payer.phone)  # hashed by the field
    found = [p for p in for_update(query.order_by(Payment.id.desc()).limit(200))
             if phone_hash(p.phone) == c2b.payer.payer_hash]
    found.sort(key=lambda p: WAITING[p.status])  # stable: the newest of each kind first
    return found[0] if found else None


def _complete_waiting(payment: Payment, c2b: C2BPayment) -> None:
    previous = payment.status
    if previous == S.COMPLETED.value:  # paid per an STK query, which carries no receipt: C2B brings it
        payment.mpesa_receipt, payment.updated_at = c2b.trans_id, utcnow()
        payment.save()
        record(payment, "receipt", actor=ACTOR, payload=c2b.raw, reason=f"receipt {c2b.trans_id} from C2B")
        return
    transition(payment, S.COMPLETED, actor=ACTOR, reason=f"C2B confirmation {c2b.trans_id}", payload=c2b.raw,
               message=f"Paid. M-Pesa receipt {c2b.trans_id}.", mpesa_receipt=c2b.trans_id,
               payer_hash=c2b.payer.payer_hash, payer_name=c2b.payer_name or payment.payer_name)
    if previous == S.EXPIRED.value:
        raise_alert("late_payment", f"{payment.reference} was EXPIRED but M-Pesa says paid ({c2b.trans_id})",
                    payment=payment)
    log.info("C2B %s completed STK payment %s", c2b.trans_id, payment.reference)


def _create_completed(c2b: C2BPayment) -> Payment:
    """Money received by itself: created PENDING, then COMPLETED through transition() so listeners run."""
    req = request_for(c2b.account)
    wrong_amount = req is not None and req.amount is not None and req.amount != c2b.amount
    payment = record_received(Received(
        amount=_whole(c2b), receipt=c2b.trans_id, account=c2b.account, actor=ACTOR, description="C2B",
        created_reason=f"C2B payment of {c2b.raw_amount} KES to {c2b.account or '-'}",
        completed_reason=f"C2B confirmation {c2b.trans_id}", status_message="Received by C2B.",
        phone=c2b.payer.phone or "", payer_hash=c2b.payer.payer_hash, payer_name=c2b.payer_name or None,
        request=None if wrong_amount else req, payload=c2b.raw))
    _check_created(payment, c2b, req if wrong_amount else None)
    log.info("C2B %s recorded as %s from %s", c2b.trans_id, payment.reference, mask_phone(payment.phone))
    return payment


def _check_created(payment: Payment, c2b: C2BPayment, mismatched: PaymentRequest | None) -> None:
    """Flag what is odd about money that is already kept: fractions, unknown payers and accounts."""
    if c2b.amount is None:
        flag(payment, f"amount {c2b.raw_amount!r} is not whole shillings; recorded as {payment.amount}",
             actor=ACTOR, payload=c2b.raw, alert_kind="c2b_amount")
    if not c2b.payer.readable:
        flag(payment, "MSISDN is neither a number nor a hash", actor=ACTOR, payload=c2b.raw, alert_kind="c2b_payer")
    if mismatched is not None:
        unexpected.handle_unexpected(
            payment, f"C2B of {c2b.raw_amount} to bill {mismatched.code}, which is for {mismatched.amount}")
    elif payment.request_id is None and not c2b.account_ok:
        unexpected.handle_unexpected(payment, f"C2B to unknown account {c2b.account or '(empty)'!r}")


def _whole(c2b: C2BPayment) -> int:
    """Whole shillings kept; a fraction is rounded down (never claim more than was received) and flagged."""
    return c2b.amount if c2b.amount is not None else int(read_amount(c2b.raw_amount))

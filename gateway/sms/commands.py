"""SMS commands customers text to the short code: parse the stored message, act, queue one reply.

Applied from the inbox (committed raw before Africa's Talking got its 200), inside one transaction
that also queues the reply and marks the row, so a message applied twice still replies once.
No Flask here: the view stores and answers, the app's tasks (or the process-inbox job) call
handle_inbound().
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from shared.db import retry_locked, write_tx
from shared.errors import InvalidInput, NotAllowed
from shared.models import Payment, PaymentRequest
from shared.money import parse_amount
from shared.phone import mask_phone, normalize_phone
from shared.states import RequestStatus
from shared.timeutil import utcnow

from ..ingest import inbox
from ..notify.outbox import enqueue
from ..notify.preferences import language_for, set_notifications
from ..payments.service import active_payment, initiate, resolve_target, send_push
from ..texts import sms as replies
from ..texts.ussd import ERROR_KEYS
from . import ratelimit

log = logging.getLogger(__name__)
SOURCE = "at.sms"
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$", re.ASCII)
TEXT_MAX = 1000  # a concatenated SMS is shorter; the rest of a longer text is never a command
LATE = timedelta(minutes=15)
CURRENCY = ("KES", "KSH", "SH")

# Word -> (command, language of the reply: "sw" for a Kiswahili alias, None for the phone's own).
ALIASES = {
    "STATUS": ("status", None), "HALI": ("status", "sw"),
    "HISTORY": ("history", None), "HISTORIA": ("history", "sw"),
    "PAY": ("pay", None), "LIPA": ("pay", "sw"),
    "STOP": ("stop", None), "ACHA": ("stop", "sw"),
    "START": ("start", None), "ANZA": ("start", "sw"),
    "HELP": ("help", None), "MSAADA": ("help", "sw"),
}


@dataclass(frozen=True)
class Inbound:
    """One customer SMS, checked: the phone normalised (2547...), the text as typed."""

    at_id: str
    phone: str
    text: str
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()
    lang: str | None = None


@dataclass(frozen=True)
class Answer:
    """The reply to queue, and the payment it is about (a PAY's new payment is pushed after commit)."""

    text: str
    payment: Payment | None = None


@dataclass(frozen=True)
class Outcome:
    status: str
    push_payment_id: int | None = None


def form_fields(body: str) -> dict[str, str]:
    """The stored form body as fields ('+' is a space, %2B a plus); NULs dropped, PostgreSQL refuses them."""
    return {k: v.replace("\x00", "") for k, v in parse_qsl(body or "", keep_blank_values=True)}


def message_id(raw) -> str | None:
    """Africa's Talking's message id when it is usable as a de-duplication key, else None."""
    text = str(raw or "").strip()
    return text if ID_RE.match(text) else None


def parse_inbound(fields: dict[str, str]) -> Inbound:
    """Check the fields AT always sends; InvalidInput names what is wrong."""
    at_id = message_id(fields.get("id"))
    if at_id is None:
        raise InvalidInput("Field id is missing or invalid.", code="invalid_message")
    if "text" not in fields:
        raise InvalidInput("Field text is missing.", code="invalid_message")
    phone = normalize_phone(fields.get("from"))  # InvalidInput(code="invalid_phone")
    return Inbound(at_id=at_id, phone=phone, text=fields["text"][:TEXT_MAX], sent_at=parse_date(fields.get("date")))


def parse_date(raw) -> datetime | None:
    """AT's date, '2017-05-03T06:04:45Z' or '2017-05-03 06:04:45', as naive UTC; None when unreadable."""
    try:
        value = datetime.fromisoformat(str(raw or "").strip())
    except ValueError:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def parse_command(text: str) -> Command:
    """Case- and space-insensitive: '  status   lp7k3q9mx ' is STATUS LP7K3Q9MX."""
    words = text.split()
    if not words:
        return Command("unknown")
    name, lang = ALIASES.get(words[0].upper().strip(".,!?:;"), ("unknown", None))
    return Command(name, tuple(words[1:]), lang)


def handle_inbound(inbox_id: int, *, daraja, callback_url: str) -> Outcome:
    """Apply one stored SMS, then (for a PAY that made a payment) send the STK push after the commit."""
    outcome = apply_inbound(inbox_id)
    if outcome.push_payment_id is not None:
        send_push(outcome.push_payment_id, daraja=daraja, callback_url=callback_url, actor="sms")
    return outcome


@retry_locked
def apply_inbound(inbox_id: int) -> Outcome:
    """Act on one stored SMS once: reply (rate-limited) and mark the row, in one transaction."""
    with write_tx():
        row, message, done = inbox.open_row(inbox_id, lambda body: parse_inbound(form_fields(body)))
        if done:
            return Outcome(done)
        ratelimit.lock_phone(message.phone)
        if ratelimit.over_limit(message.phone):
            log.warning("SMS from %s not answered: rate limited", mask_phone(message.phone))
            inbox.mark(row, "APPLIED", "rate limited")
            return Outcome("APPLIED")
        command = parse_command(message.text)
        lang = command.lang or language_for(message.phone)
        answer = answer_command(message, command, lang)
        enqueue(channel="sms", kind=ratelimit.REPLY_KIND, recipient=message.phone, body=answer.text,
                payment=answer.payment, language=lang,
                dedupe_key=f"reply:{message.at_id}", respect_opt_out=False)
        inbox.mark(row, "APPLIED", command.name, payment=answer.payment)
        push = answer.payment if command.name == "pay" and answer.payment is not None else None
        return Outcome("APPLIED", push.id if push is not None and push.status == "PENDING" else None)


def answer_command(message: Inbound, command: Command, lang: str) -> Answer:
    """Run one command for the sender; the caller holds the transaction."""
    handler = _HANDLERS.get(command.name, _unknown)
    return handler(message, command, lang)


def _status(message: Inbound, command: Command, lang: str) -> Answer:
    """The sender's latest payment, or the one with that reference if it is the sender's own."""
    query = Payment.select().where(Payment.phone_hash == message.phone)
    if command.args:
        payment = query.where(Payment.reference == command.args[0].upper()).first()
        if payment is None:  # also for another phone's reference: never say it exists
            return Answer(replies.not_found(lang, command.args[0].upper()))
    else:
        payment = query.order_by(Payment.created_at.desc(), Payment.id.desc()).first()
        if payment is None:
            return Answer(replies.message(lang, "no_payments"))
    text = replies.status(lang, ref=payment.reference, state=payment.status, amount=payment.amount,
                          account=payment.account, receipt=payment.mpesa_receipt)
    return Answer(text, payment)


def _history(message: Inbound, command: Command, lang: str) -> Answer:
    """The latest few payments of the sender, newest first, in one SMS."""
    payments = (Payment.select().where(Payment.phone_hash == message.phone)
                .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(replies.HISTORY_MAX))
    rows = [(p.reference, p.amount, p.status) for p in payments]
    return Answer(replies.history(lang, rows) if rows else replies.message(lang, "no_payments"))


def _pay(message: Inbound, command: Command, lang: str) -> Answer:
    """PAY <account> <amount>: a PENDING payment whose push follows the commit; a refusal says why."""
    args = [a for a in command.args if a.upper() not in CURRENCY]
    if not 1 <= len(args) <= 2:
        return Answer(replies.message(lang, "pay_usage"))
    try:
        target = resolve_target(args[0])
        amount = parse_amount(_amount_text(args[1])) if len(args) == 2 else target.amount
    except InvalidInput as exc:
        return Answer(replies.refused(lang, ERROR_KEYS.get(exc.code, "err.invalid_input")))
    except NotAllowed:
        return Answer(replies.refused(lang, _closed_bill_key(args[0]), code=args[0]))
    if amount is None:
        return Answer(replies.message(lang, "pay_usage"))
    if target.amount and amount != target.amount:
        return Answer(replies.bill_amount(lang, code=args[0], amount=target.amount))
    _warn_if_late(message)
    return _start_payment(message, lang, target, amount)


def _amount_text(raw: str) -> str:
    """'KES500' and '500/=' as customers write them, to '500'."""
    text = raw.upper().removesuffix("/=")
    for prefix in CURRENCY:
        text = text.removeprefix(prefix)
    return text


def _closed_bill_key(code: str) -> str:
    req = PaymentRequest.get_or_none(PaymentRequest.code == code)
    return "err.bill_paid" if req is not None and req.status == RequestStatus.PAID.value else "err.bill_closed"


def _warn_if_late(message: Inbound) -> None:
    """AT retries for hours after an outage: a PIN prompt for an old PAY may surprise the customer."""
    if message.sent_at and utcnow() - message.sent_at > LATE:
        log.warning("PAY from %s sent at %s is applied late", mask_phone(message.phone), message.sent_at)


def _start_payment(message: Inbound, lang: str, target, amount: int) -> Answer:
    try:
        payment = initiate(phone=message.phone, amount=amount, account=target.account, channel="sms",
                           idempotency_key=f"sms:{message.at_id}", request=target.request, language=lang)
    except NotAllowed as exc:
        busy = active_payment(message.phone) if exc.code == "payment_in_progress" else None
        if busy is None:
            return Answer(replies.refused(lang, "err.not_allowed"))
        return Answer(replies.refused(lang, "err.in_progress", ref=busy.reference))
    except InvalidInput as exc:
        return Answer(replies.refused(lang, ERROR_KEYS.get(exc.code, "err.invalid_input")))
    text = replies.pay_started(lang, amount=payment.amount, account=payment.account, ref=payment.reference)
    return Answer(text, payment)


def _stop(message: Inbound, command: Command, lang: str) -> Answer:
    """No more notifications; replies to the phone's own commands still go out."""
    set_notifications(message.phone, False)
    return Answer(replies.message(lang, "stopped"))


def _start(message: Inbound, command: Command, lang: str) -> Answer:
    set_notifications(message.phone, True)
    return Answer(replies.message(lang, "started"))


def _help(message: Inbound, command: Command, lang: str) -> Answer:
    return Answer(replies.message(lang, "help"))


def _unknown(message: Inbound, command: Command, lang: str) -> Answer:
    return Answer(replies.message(lang, "unknown"))


_HANDLERS = {"status": _status, "history": _history, "pay": _pay, "stop": _stop, "start": _start,
             "help": _help, "unknown": _unknown}

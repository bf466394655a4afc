"""The USSD menu engine: replay every input of a session through a small state machine, answer the last hop.

Replaying from the start (instead of keeping a "current screen") makes any gateway process able to
answer any hop, and makes back (0), home (00) and duplicates fall out of one deterministic function.
No Flask here: the view parses the form into a Hop and sends the STK push after the answer.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from functools import cache, cached_property

from cachetools import TTLCache

from shared.db import db
from shared.db.prepared import Prepared
from shared.errors import InvalidInput, NotAllowed
from shared.models import Payment, PaymentRequest, PhonePreference
from shared.money import parse_amount
from shared.phone import mask_phone
from shared.states import RequestStatus

from ..notify import preferences
from ..payments.service import PayTarget, active_payment, initiate, resolve_target
from ..texts import ussd as texts
from . import sessions

log = logging.getLogger(__name__)

MAX_INPUTS = 30  # a real session times out long before this; more is a loop or an attack
MAX_TEXT = 4000  # 30 hops of the longest input an operator lets through, with room to spare
PAGE_SIZE = 3
HISTORY_MAX = 12

MAIN, ACCOUNT, AMOUNT, CONFIRM, HISTORY, LANGUAGE = "main", "account", "amount", "confirm", "history", "language"
STATUS, PAY, CANCEL, EXIT, SET_LANGUAGE, REFUSED = "status", "pay", "cancel", "exit", "set_language", "refused"
CLOSING = frozenset({STATUS, PAY, CANCEL, EXIT, SET_LANGUAGE, REFUSED})
MAIN_OPTIONS = {"1": ACCOUNT, "2": STATUS, "3": HISTORY, "4": LANGUAGE, "0": EXIT}

# What the screens read (built once: see shared.db.prepared); only the columns they show.
_RECENT = Prepared(lambda p: Payment.select(Payment.reference, Payment.amount, Payment.status, Payment.account,
                                            Payment.mpesa_receipt)
                   .where(Payment.phone_hash == p[0])
                   .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(HISTORY_MAX), Payment.phone_hash)
_BUSY = Prepared(lambda p: Payment.select(Payment.reference, Payment.amount).where(Payment.active_phone == p[0]),
                 Payment.active_phone)
_SESSION_PAYMENT = Prepared(lambda p: Payment.select(Payment.id).where(Payment.idempotency_key == p[0]),
                            Payment.idempotency_key)


@dataclass(frozen=True)
class Hop:
    """One callback from Africa's Talking, already checked: the phone is normalised (2547…)."""

    session_id: str
    phone: str
    text: str
    service_code: str = ""


@dataclass(frozen=True)
class Reply:
    """The screen to answer with, and the payment whose STK push must follow it (created by this hop)."""

    text: str
    push_payment_id: int | None = None


@dataclass(frozen=True)
class State:
    """Where the replay stands; ``note`` is a (template key, values) line shown above the next screen."""

    step: str = MAIN
    target: PayTarget | None = None
    amount: int | None = None
    page: int = 0
    note: tuple[str, dict] | None = None
    language: str | None = None


class SessionLanguages:
    """The language each live session was answered in, per process: (session id, phone) -> language.

    A session keeps the language it started with (choosing another ends the session), so only the first hop
    a process sees of a session reads it; the later hops (Africa's Talking sends a session's hops over one
    kept-alive connection, so mostly to the same process) answer from this memory without a query or a
    database connection. Keyed by the phone as well, so a session id posted with another number reads afresh.
    Bounded and expiring: a session lives at most a few minutes at the operator."""

    def __init__(self, maxsize: int = 20_000, ttl_s: float = 600):
        self._cache: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl_s)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def get(self, session_id: str, phone: str) -> str | None:
        with self._lock:
            return self._cache.get((session_id, phone))

    def put(self, session_id: str, phone: str, lang: str) -> None:
        with self._lock:
            self._cache[(session_id, phone)] = lang


_UNREAD = object()


class Caller:
    """What the screens read about the dialling phone, fetched at most once per hop. ``busy`` is the
    payment still waiting for its PIN, as (reference, amount), shown on the main menu (redial-to-resume):
    read with the language on a session's first hop, and on a later hop only when its screen is the menu."""

    def __init__(self, phone: str, lang: str, busy=_UNREAD):
        self.phone = phone
        self.lang = lang
        self._busy = busy

    @classmethod
    def read(cls, phone: str, session_id: str = "", languages: SessionLanguages | None = None) -> Caller:
        """The phone's language and its waiting payment in one indexed read (two look-up hashes, both unique):
        every screen a hop can show needs the language, the main menu also the waiting payment, and one round
        trip costs less than deciding which to fetch. A later hop of a session this process has answered takes
        the language from ``languages`` (the app's SessionLanguages) and reads nothing. The language rule is
        notify.preferences.language_for's (a chosen language we know, else English)."""
        known = languages.get(session_id, phone) if languages is not None else None
        if known is not None:
            return cls(phone, known)
        phone_hash = PhonePreference.phone_hash.db_value(phone)  # the same keyed hash as Payment.active_phone's
        row = db.execute_sql(_caller_sql(db.obj.param), (phone_hash, phone_hash)).fetchone()
        lang = row[0] if row and row[0] in texts.LANGUAGES else "en"
        busy = (row[1], row[2]) if row and row[1] is not None else None
        if languages is not None:
            languages.put(session_id, phone, lang)
        return cls(phone, lang, busy)

    @property
    def busy(self) -> tuple[str, int] | None:
        if self._busy is _UNREAD:
            row = _BUSY.first(self.phone)
            self._busy = (row.reference, row.amount) if row is not None else None
        return self._busy

    @cached_property
    def recent(self) -> list[Payment]:
        """The phone's latest payments, newest first."""
        return _RECENT.rows(self.phone)

    def pages(self) -> int:
        """How many history pages there are."""
        return (len(self.recent) + PAGE_SIZE - 1) // PAGE_SIZE


@cache
def _caller_sql(mark: str) -> str:
    """One row whatever exists: a one-row derived table, left-joined to the preference and the payment.
    Built once per parameter mark (SQLite's ?, PostgreSQL's %s)."""
    pref, pay = PhonePreference._meta, Payment._meta
    return (f"SELECT pp.{pref.fields['language'].column_name}, pw.{pay.fields['reference'].column_name}, "
            f"pw.{pay.fields['amount'].column_name} FROM (SELECT 1 AS one) AS o "
            f"LEFT JOIN {pref.table_name} AS pp ON pp.{pref.fields['phone_hash'].column_name} = {mark} "
            f"LEFT JOIN {pay.table_name} AS pw ON pw.{pay.fields['active_phone'].column_name} = {mark}")


REQUEST_CODE_LEN = 6  # shared.refs.request_code


def handle(hop: Hop, languages: SessionLanguages | None = None) -> Reply:
    """Answer one hop from Africa's Talking's ``text`` alone (it carries every input of the session): a hop
    that creates nothing writes nothing. Only the hop that creates the payment stores its session (the hop
    log its timeline shows); a duplicate of that hop finds the payment by the session's idempotency key, so
    it answers the same END and never pushes twice."""
    caller = Caller.read(hop.phone, hop.session_id, languages)
    if len(hop.text) > MAX_TEXT:
        return Reply(texts.message(caller.lang, "too_many_steps"))
    inputs = sessions.split(hop.text)
    screen, payment, fresh = respond(inputs, caller, hop.session_id)
    screen = texts.fit(screen)
    if payment is not None and fresh:
        sessions.save(session_id=hop.session_id, phone=hop.phone, service_code=hop.service_code,
                      inputs=inputs, text=hop.text, response=screen, payment=payment, stored=False)
    return Reply(screen, payment.id if payment is not None and fresh else None)


def respond(inputs: list[str], caller: Caller, session_id: str) -> tuple[str, Payment | None, bool]:
    """The screen for a session's inputs, and the payment it made (fresh: not made by an earlier hop)."""
    if len(inputs) > MAX_INPUTS:
        return texts.message(caller.lang, "too_many_steps"), None, False
    state = replay(inputs, caller)
    if state.step == PAY:
        return pay(state, caller, session_id)
    if state.step == SET_LANGUAGE:
        preferences.set_language(caller.phone, state.language)
    return render(state, caller), None, False


def replay(inputs: list[str], caller: Caller) -> State:
    """Run every input from the first screen; stop at the first screen that closes the session."""
    state = State()
    for value in inputs:
        state = advance(state, value.strip(), caller)
        if state.step in CLOSING:
            break
    return state


def advance(state: State, value: str, caller: Caller) -> State:
    """One input: '00' goes home from anywhere, everything else is up to the current step."""
    if value == "00":
        return State()
    return _STEPS[state.step](state if state.note is None else replace(state, note=None), value, caller)


def _invalid(state: State) -> State:
    return replace(state, note=("invalid_choice", {}))


def _main(state: State, value: str, caller: Caller) -> State:
    step = MAIN_OPTIONS.get(value)
    if step:
        return State(step=step)
    if value.isdigit() and len(value) == REQUEST_CODE_LEN:  # dialled straight to a request: *384*123*<code>#
        return _direct(state, value, caller)
    return _invalid(state)


def _direct(state: State, code: str, caller: Caller) -> State:
    """A first input that is a payment request's code goes to that request's confirm screen (or its amount
    question when the customer chooses the amount); a code that is no request is an invalid choice."""
    if not PaymentRequest.select().where(PaymentRequest.code == code).exists():
        return _invalid(state)
    return _account(State(step=ACCOUNT), code, caller)


def _account(state: State, value: str, caller: Caller) -> State:
    if value == "0":
        return State()
    try:
        target = resolve_target(value)
    except InvalidInput as exc:
        return replace(state, note=_error_note(exc))
    except NotAllowed:
        return State(step=REFUSED, note=_bill_note(value))
    if target.amount:
        return State(step=CONFIRM, target=target, amount=target.amount)
    return State(step=AMOUNT, target=target)


def _amount(state: State, value: str, caller: Caller) -> State:
    """Here 0 is an amount (refused as out of range), not Back: the screen asks for a number."""
    try:
        amount = parse_amount(value)
    except InvalidInput as exc:
        return replace(state, note=_error_note(exc))
    return replace(state, step=CONFIRM, amount=amount)


def _confirm(state: State, value: str, caller: Caller) -> State:
    if value == "1":
        return replace(state, step=PAY)
    if value == "2":
        return State(step=CANCEL)
    if value == "0":
        fixed = state.target is not None and state.target.amount
        return State(step=ACCOUNT) if fixed else replace(state, step=AMOUNT, amount=None)
    return _invalid(state)


def _history(state: State, value: str, caller: Caller) -> State:
    if value == "0":
        return State()
    if value == "98" and state.page + 1 < caller.pages():
        return replace(state, page=state.page + 1)
    return _invalid(state)


def _language(state: State, value: str, caller: Caller) -> State:
    chosen = {"1": "en", "2": "sw"}.get(value)
    if chosen:
        return State(step=SET_LANGUAGE, language=chosen)
    return State() if value == "0" else _invalid(state)


_STEPS = {MAIN: _main, ACCOUNT: _account, AMOUNT: _amount, CONFIRM: _confirm,
          HISTORY: _history, LANGUAGE: _language}


def _error_note(exc: InvalidInput) -> tuple[str, dict]:
    return texts.ERROR_KEYS.get(exc.code, "err.invalid_input"), {}


def _bill_note(code: str) -> tuple[str, dict]:
    """A bill that cannot be paid: already paid, or expired/cancelled."""
    req = PaymentRequest.get_or_none(PaymentRequest.code == code)
    paid = req is not None and req.status == RequestStatus.PAID.value
    return ("err.bill_paid" if paid else "err.bill_closed"), {"code": texts.shown(code)}


def _note_line(lang: str, note: tuple[str, dict] | None) -> str | None:
    return texts.t(lang, note[0], **note[1]) if note else None


def render(state: State, caller: Caller) -> str:
    """The screen for where the replay stopped (PAY is answered by pay(), which has an effect)."""
    lang, note = caller.lang, _note_line(caller.lang, state.note)
    if state.step == MAIN:
        return texts.main_menu(lang, resume=caller.busy, note=note)
    if state.step == ACCOUNT:
        return texts.ask_account(lang, note)
    if state.step == AMOUNT:
        return texts.ask_amount(lang, note)
    if state.step == CONFIRM:
        return texts.confirm(lang, state.amount, state.target.account, note)
    if state.step == HISTORY:
        return _history_screen(state, caller, note)
    if state.step == LANGUAGE:
        return texts.language_menu(lang, note)
    return _closing(state, caller, note)


def _closing(state: State, caller: Caller, note: str | None) -> str:
    lang = caller.lang
    if state.step == STATUS:
        return _status_screen(caller)
    if state.step == SET_LANGUAGE:
        return texts.message(state.language, "language_set")  # in the language just chosen
    if state.step == REFUSED:
        return texts.end(note)
    return texts.message(lang, "cancelled" if state.step == CANCEL else "goodbye")


def _status_screen(caller: Caller) -> str:
    if not caller.recent:
        return texts.message(caller.lang, "no_payments")
    latest = caller.recent[0]
    return texts.status(caller.lang, ref=latest.reference, state=latest.status, amount=latest.amount,
                        account=latest.account, receipt=latest.mpesa_receipt)


def _history_screen(state: State, caller: Caller, note: str | None) -> str:
    if not caller.recent:
        return texts.message(caller.lang, "no_payments")
    start = state.page * PAGE_SIZE
    rows = [(p.reference, p.amount, p.status) for p in caller.recent[start:start + PAGE_SIZE]]
    return texts.history(caller.lang, rows, more=state.page + 1 < caller.pages(), note=note)


def pay(state: State, caller: Caller, session_id: str) -> tuple[str, Payment | None, bool]:
    """Create the PENDING payment (one per session, whatever the retries) and say a PIN prompt follows."""
    key = f"ussd:{session_id}"
    fresh = _SESSION_PAYMENT.first(key) is None
    try:
        payment = initiate(phone=caller.phone, amount=state.amount, account=state.target.account,
                           channel="ussd", request=state.target.request, idempotency_key=key,
                           language=caller.lang)
    except NotAllowed as exc:
        return texts.end(_note_line(caller.lang, _refusal(exc, caller))), None, False
    except InvalidInput as exc:
        return texts.end(_note_line(caller.lang, _error_note(exc))), None, False
    if payment.phone != caller.phone:  # a session id another phone already paid in: never its payment
        log.warning("USSD session reused by another phone %s", mask_phone(caller.phone))
        return texts.message(caller.lang, "failure"), None, False
    return texts.pay_started(caller.lang, payment.amount, payment.reference), payment, fresh


def _refusal(exc: NotAllowed, caller: Caller) -> tuple[str, dict]:
    busy = active_payment(caller.phone) if exc.code == "payment_in_progress" else None
    return ("err.in_progress", {"ref": busy.reference}) if busy else ("err.not_allowed", {})

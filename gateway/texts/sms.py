"""Every SMS reply in English and Kiswahili, and the builders that fill them in.

A reply is one GSM-7 segment (at most 160 septets) whatever the data: tests/test_sms_replies.py renders
every template with the longest values it can hold. Status words and refusal reasons are the USSD ones.
"""
from __future__ import annotations

from shared.gsm import gsm7_length, is_gsm7, to_gsm7
from shared.money import format_kes

from . import ussd as texts

SMS_MAX = 160
HISTORY_MAX = 4  # four lines at their longest still fit one segment with the title

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "help": "Lipa SMS: STATUS or STATUS <ref> for a payment, HISTORY for recent ones, "
                "PAY <account> <amount> to pay, STOP to end notifications, START to resume.",
        "unknown": "Lipa did not understand. Send STATUS, HISTORY, PAY <account> <amount>, STOP or START. "
                   "Send HELP for more.",
        "status": "Payment {ref}: {status}. {amount} to account {account}.",
        "receipt": "M-Pesa receipt {receipt}.",
        "not_found": "No payment {ref} for this phone number. Send STATUS for your latest payment.",
        "no_payments": "You have no Lipa payments yet. To pay, send PAY <account> <amount>.",
        "history_title": "Your recent payments:",
        "history_line": "{ref} {amount} {status}",
        "pay_started": "Wait for the M-Pesa prompt and enter your PIN to pay {amount} to account {account}. "
                       "Ref {ref}",
        "pay_usage": "To pay, send PAY <account> <amount>, for example PAY 12345 500",
        "pay_refused": "Payment not started. {reason}",
        "bill_amount": "Bill {code} is for {amount}. Send PAY {code} to pay it.",
        "stopped": "Lipa notifications are now off. Send START to turn them on again.",
        "started": "Lipa notifications are on again. Send STOP to turn them off.",
    },
    "sw": {
        "help": "Lipa SMS: HALI au HALI <kumbukumbu> kwa malipo, HISTORIA kwa ya karibuni, "
                "LIPA <akaunti> <kiasi> kulipa, ACHA kusimamisha taarifa, ANZA kuanza tena.",
        "unknown": "Lipa haikuelewa. Tuma HALI, HISTORIA, LIPA <akaunti> <kiasi>, ACHA au ANZA. "
                   "Tuma MSAADA kwa zaidi.",
        "status": "Malipo {ref}: {status}. {amount} kwa akaunti {account}.",
        "receipt": "Risiti ya M-Pesa {receipt}.",
        "not_found": "Hakuna malipo {ref} ya nambari hii. Tuma HALI kwa malipo yako ya mwisho.",
        "no_payments": "Bado huna malipo ya Lipa. Kulipa, tuma LIPA <akaunti> <kiasi>.",
        "history_title": "Malipo ya karibuni:",
        "history_line": "{ref} {amount} {status}",
        "pay_started": "Subiri ombi la M-Pesa kisha weka PIN yako kulipa {amount} kwa akaunti {account}. "
                       "Kumb. {ref}",
        "pay_usage": "Kulipa, tuma LIPA <akaunti> <kiasi>, kwa mfano LIPA 12345 500",
        "pay_refused": "Malipo hayakuanza. {reason}",
        "bill_amount": "Bili {code} ni ya {amount}. Tuma LIPA {code} kuilipa.",
        "stopped": "Taarifa za Lipa zimezimwa. Tuma ANZA kuziwasha tena.",
        "started": "Taarifa za Lipa zimewashwa tena. Tuma ACHA kuzizima.",
    },
}


def t(lang: str, key: str, **values) -> str:
    """One template in the reply's language (English when the language is unknown)."""
    table = TEMPLATES.get(lang) or TEMPLATES["en"]
    return table[key].format(**values)


def fit(text: str) -> str:
    """Last guard before a reply is queued: GSM-7 and one segment, whatever the data did."""
    text = text if is_gsm7(text) else to_gsm7(text)
    while gsm7_length(text) > SMS_MAX:
        text = text[:-1]
    return text


def shown(value) -> str:
    """Customer or provider data in a reply: GSM-7 and cut, so it can never overflow a segment."""
    return texts.shown(value)


def status(lang: str, *, ref: str, state: str, amount: int, account: str, receipt: str | None) -> str:
    """One payment, with its M-Pesa receipt once there is one."""
    text = t(lang, "status", ref=shown(ref), status=texts.status_word(lang, state),
             amount=format_kes(amount), account=shown(account))
    return fit(f"{text} {t(lang, 'receipt', receipt=shown(receipt))}" if receipt else text)


def history(lang: str, rows: list[tuple[str, int, str]]) -> str:
    """The latest payments, newest first, as (reference, amount, status) rows: one SMS."""
    lines = [t(lang, "history_line", ref=shown(ref), amount=format_kes(amount),
               status=texts.status_word(lang, state, short=True)) for ref, amount, state in rows[:HISTORY_MAX]]
    return fit("\n".join([t(lang, "history_title"), *lines]))


def pay_started(lang: str, *, amount: int, account: str, ref: str) -> str:
    """The STK push follows this reply; the customer must look for the PIN prompt."""
    return fit(t(lang, "pay_started", amount=format_kes(amount), account=shown(account), ref=shown(ref)))


def refused(lang: str, reason_key: str, **values) -> str:
    """Why no payment was started, in the USSD menu's words (err.* keys of gateway.texts.ussd)."""
    reason = texts.t(lang, reason_key, **{k: shown(v) for k, v in values.items()})
    return fit(t(lang, "pay_refused", reason=reason))


def bill_amount(lang: str, *, code: str, amount: int) -> str:
    """A bill with a fixed amount was sent with another amount."""
    return fit(t(lang, "bill_amount", code=shown(code), amount=format_kes(amount)))


def not_found(lang: str, ref: str) -> str:
    """Also the answer for another phone's reference: never reveal that it exists."""
    return fit(t(lang, "not_found", ref=shown(ref)))


def message(lang: str, key: str) -> str:
    """A reply without data: help, unknown, no_payments, pay_usage, stopped, started."""
    return fit(t(lang, key))

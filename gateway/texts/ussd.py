"""Every USSD string in English and Kiswahili, and the builders that put a screen together.

A screen is at most 160 characters including "CON "/"END ", GSM-7 only; tests/test_ussd_screens.py
renders every template here with the longest values it can hold.
"""
from __future__ import annotations

from shared.gsm import is_gsm7, to_gsm7
from shared.money import format_kes

LANGUAGES = ("en", "sw")
SCREEN_MAX = 160
SHOWN_MAX = 12  # account, receipt: longer provider data is cut so a screen never overflows

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Lipa M-Pesa",
        "main_options": "1 Pay\n2 Payment status\n3 Recent payments\n4 Language/Lugha\n0 Exit",
        "resume": "{ref} {amount} is waiting for your M-Pesa PIN.",
        "invalid_choice": "Invalid choice.",
        "ask_account": "Enter account number or bill code\n0 Back",
        "ask_amount": "Enter amount in KES (whole shillings)\n00 Main menu",
        "confirm": "Pay {amount} to account {account}?\n1 Confirm\n2 Cancel\n0 Back",
        "pay_started": "Wait for the M-Pesa prompt and enter your PIN to pay {amount}. Ref {ref}",
        "cancelled": "Payment cancelled.",
        "status": "Payment {ref}: {status}\n{amount} to account {account}",
        "receipt": "M-Pesa receipt {receipt}",
        "no_payments": "You have no payments yet.",
        "history_title": "Recent payments",
        "history_line": "{ref} {amount} {status}",
        "more": "98 More",
        "back": "0 Back",
        "language_menu": "Choose language\n1 English\n2 Kiswahili\n0 Back",
        "language_set": "Language set to English.",
        "goodbye": "Thank you for using Lipa. Goodbye.",
        "too_many_steps": "Too many steps. Please dial again.",
        "failure": "Sorry, something went wrong. Please try again.",
        "bad_phone": "Sorry, this phone number cannot use Lipa.",
        "err.invalid_account": "Account must be 1-12 letters or digits.",
        "err.invalid_amount": "Amount must be a whole number of shillings.",
        "err.amount_out_of_range": "Amount must be from 1 to 250,000 KES.",
        "err.invalid_input": "That input is not valid.",
        "err.bill_paid": "Bill {code} is already paid.",
        "err.bill_closed": "Bill {code} is no longer open.",
        "err.in_progress": "Payment {ref} is still waiting for M-Pesa. Finish it or wait.",
        "err.not_allowed": "This payment cannot be made now.",
        "long.PENDING": "Sending the M-Pesa prompt",
        "long.PROCESSING": "Waiting for your PIN",
        "long.COMPLETED": "Paid",
        "long.SETTLED": "Paid",
        "long.FAILED": "Failed",
        "long.CANCELLED": "Cancelled",
        "long.EXPIRED": "Expired",
        "long.REFUND_PENDING": "Refund in progress",
        "long.REFUNDED": "Refunded",
        "short.PENDING": "Sending",
        "short.PROCESSING": "Waiting",
        "short.COMPLETED": "Paid",
        "short.SETTLED": "Paid",
        "short.FAILED": "Failed",
        "short.CANCELLED": "Cancelled",
        "short.EXPIRED": "Expired",
        "short.REFUND_PENDING": "Refunding",
        "short.REFUNDED": "Refunded",
    },
    "sw": {
        "title": "Lipa M-Pesa",
        "main_options": "1 Lipa\n2 Hali ya malipo\n3 Malipo ya hivi karibuni\n4 Lugha/Language\n0 Ondoka",
        "resume": "{ref} {amount} inasubiri PIN yako ya M-Pesa.",
        "invalid_choice": "Chaguo si sahihi.",
        "ask_account": "Weka nambari ya akaunti au nambari ya bili\n0 Rudi",
        "ask_amount": "Weka kiasi (KES) kwa shilingi kamili\n00 Menyu kuu",
        "confirm": "Lipa {amount} kwa akaunti {account}?\n1 Thibitisha\n2 Ghairi\n0 Rudi",
        "pay_started": "Subiri ombi la M-Pesa kisha weka PIN yako kulipa {amount}. Kumbukumbu {ref}",
        "cancelled": "Malipo yameghairiwa.",
        "status": "Malipo {ref}: {status}\n{amount} kwa akaunti {account}",
        "receipt": "Risiti ya M-Pesa {receipt}",
        "no_payments": "Bado huna malipo yoyote.",
        "history_title": "Malipo ya hivi karibuni",
        "history_line": "{ref} {amount} {status}",
        "more": "98 Zaidi",
        "back": "0 Rudi",
        "language_menu": "Chagua lugha\n1 English\n2 Kiswahili\n0 Rudi",
        "language_set": "Lugha imebadilishwa kuwa Kiswahili.",
        "goodbye": "Asante kwa kutumia Lipa. Kwaheri.",
        "too_many_steps": "Hatua ni nyingi mno. Tafadhali piga tena.",
        "failure": "Samahani, kuna hitilafu. Tafadhali jaribu tena.",
        "bad_phone": "Samahani, nambari hii haiwezi kutumia Lipa.",
        "err.invalid_account": "Akaunti iwe herufi au tarakimu 1 hadi 12.",
        "err.invalid_amount": "Kiasi kiwe shilingi kamili, bila senti.",
        "err.amount_out_of_range": "Kiasi kiwe kati ya KES 1 na 250,000.",
        "err.invalid_input": "Ulichoweka si sahihi.",
        "err.bill_paid": "Bili {code} imeshalipwa.",
        "err.bill_closed": "Bili {code} haiko wazi tena.",
        "err.in_progress": "Malipo {ref} bado yanasubiri M-Pesa. Yamalize au subiri.",
        "err.not_allowed": "Malipo haya hayawezekani sasa.",
        "long.PENDING": "Tunatuma ombi la M-Pesa",
        "long.PROCESSING": "Inasubiri PIN yako",
        "long.COMPLETED": "Imelipwa",
        "long.SETTLED": "Imelipwa",
        "long.FAILED": "Imeshindikana",
        "long.CANCELLED": "Imeghairiwa",
        "long.EXPIRED": "Muda umekwisha",
        "long.REFUND_PENDING": "Inarejeshwa",
        "long.REFUNDED": "Imerejeshwa",
        "short.PENDING": "Inatumwa",
        "short.PROCESSING": "Inasubiri",
        "short.COMPLETED": "Imelipwa",
        "short.SETTLED": "Imelipwa",
        "short.FAILED": "Imeshindwa",
        "short.CANCELLED": "Imeghairiwa",
        "short.EXPIRED": "Imekwisha",
        "short.REFUND_PENDING": "Inarejeshwa",
        "short.REFUNDED": "Imerejeshwa",
    },
}

# A LipaError's code -> the line that explains it to a caller.
ERROR_KEYS = {
    "invalid_account": "err.invalid_account",
    "invalid_amount": "err.invalid_amount",
    "amount_out_of_range": "err.amount_out_of_range",
    "payment_in_progress": "err.in_progress",
}


def t(lang: str, key: str, **values) -> str:
    """One template in the caller's language (English when the language is unknown)."""
    table = TEMPLATES.get(lang) or TEMPLATES["en"]
    return table[key].format(**values)


def shown(value, limit: int = SHOWN_MAX) -> str:
    """Data put on a screen: GSM-7 only, and cut so it can never push a screen past 160."""
    return to_gsm7(str(value or ""))[:limit]


def status_word(lang: str, status: str, *, short: bool = False) -> str:
    """A payment status in plain words; an unknown status is shown as it is."""
    key = ("short." if short else "long.") + str(status)
    return t(lang, key) if key in TEMPLATES["en"] else shown(status, 12)


def con(*lines: str | None) -> str:
    """A screen that waits for input; empty lines (no notice) are left out."""
    return "CON " + "\n".join(line for line in lines if line)


def end(*lines: str | None) -> str:
    """A screen that closes the session."""
    return "END " + "\n".join(line for line in lines if line)


def fit(screen: str) -> str:
    """Last guard before a screen leaves: GSM-7 and at most 160 characters, whatever the data."""
    screen = screen if is_gsm7(screen) else to_gsm7(screen)
    return screen[:SCREEN_MAX]


def main_menu(lang: str, *, resume: tuple[str, int] | None = None, note: str | None = None) -> str:
    """The main menu; a payment still waiting for its PIN is shown first (redial-to-resume)."""
    head = t(lang, "resume", ref=resume[0], amount=format_kes(resume[1])) if resume else t(lang, "title")
    return con(note, head, t(lang, "main_options"))


def ask_account(lang: str, note: str | None = None) -> str:
    """Which account (or bill code) to pay."""
    return con(note, t(lang, "ask_account"))


def ask_amount(lang: str, note: str | None = None) -> str:
    """How much to pay, in whole shillings."""
    return con(note, t(lang, "ask_amount"))


def confirm(lang: str, amount: int, account: str, note: str | None = None) -> str:
    """The last look before the PIN prompt."""
    return con(note, t(lang, "confirm", amount=format_kes(amount), account=shown(account)))


def pay_started(lang: str, amount: int, ref: str) -> str:
    """The session ends here; the STK push follows right after."""
    return end(t(lang, "pay_started", amount=format_kes(amount), ref=ref))


def status(lang: str, *, ref: str, state: str, amount: int, account: str, receipt: str | None) -> str:
    """The caller's latest payment; the receipt only once M-Pesa has given one."""
    body = t(lang, "status", ref=ref, status=status_word(lang, state),
             amount=format_kes(amount), account=shown(account))
    return end(body, t(lang, "receipt", receipt=shown(receipt)) if receipt else None)


def history(lang: str, rows: list[tuple[str, int, str]], *, more: bool, note: str | None = None) -> str:
    """One page of recent payments: (reference, amount, status) rows, newest first; a note replaces the title."""
    lines = [t(lang, "history_line", ref=ref, amount=format_kes(amount),
               status=status_word(lang, state, short=True)) for ref, amount, state in rows]
    return con(note or t(lang, "history_title"), *lines, t(lang, "more") if more else None, t(lang, "back"))


def language_menu(lang: str, note: str | None = None) -> str:
    """English or Kiswahili."""
    return con(note, t(lang, "language_menu"))


def message(lang: str, key: str, **values) -> str:
    """A one-line closing screen (goodbye, cancelled, refusals)."""
    return end(t(lang, key, **values))

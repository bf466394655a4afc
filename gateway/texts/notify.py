"""SMS texts for each status change, in English and Kiswahili; each fits one GSM-7 segment (160).

tests/test_notify_templates.py renders every template with the longest values it can hold.
"""
from __future__ import annotations

from shared.gsm import gsm7_length, is_gsm7, to_gsm7
from shared.money import format_kes

SMS_MAX = 160
REASON_MAX = 64

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "payment_initiated": "Lipa: Check your phone for the M-Pesa prompt to pay {amount} to {account}. Ref {ref}",
        "payment_completed": "Lipa receipt: Paid {amount} to {account}. M-Pesa {receipt}. Ref {ref}. Thank you.",
        "payment_confirmed": "Lipa: M-Pesa confirmed your payment of {amount} to {account}. Ref {ref}. Thank you.",
        "payment_failed": "Lipa: Payment of {amount} to {account} failed. {reason} To retry SMS PAY {account} {n}",
        "payment_cancelled": "Lipa: Payment of {amount} to {account} was cancelled. Ref {ref}. To pay SMS PAY {account} {n}",
        "payment_expired": "Lipa: No M-Pesa answer; payment of {amount} to {account} expired. To retry SMS PAY {account} {n}",
        "payment_settled": "Lipa: Payment {ref} of {amount} to {account} is confirmed on the M-Pesa statement.",
        "refund_initiated": "Lipa: Refund of {amount} for payment {ref} has started. You will get an SMS when done.",
        "refund_processing": "Lipa: Refund of {amount} for payment {ref} is being processed by M-Pesa.",
        "refund_completed": "Lipa: Refund of {amount} for payment {ref} is complete. Check your M-Pesa balance.",
        "refund_failed": "Lipa: Refund of {amount} for payment {ref} failed. We will contact you. Ref {ref}",
        "refund_cancelled": "Lipa: Refund of {amount} for payment {ref} was cancelled.",
        "reason.generic": "M-Pesa did not take the payment.",
    },
    "sw": {
        "payment_initiated": "Lipa: Angalia simu yako kwa ombi la M-Pesa kulipa {amount} kwa {account}. Kumb {ref}",
        "payment_completed": "Risiti ya Lipa: Umelipa {amount} kwa {account}. M-Pesa {receipt}. Kumb {ref}. Asante.",
        "payment_confirmed": "Lipa: M-Pesa imethibitisha malipo yako ya {amount} kwa {account}. Kumb {ref}. Asante.",
        "payment_failed": "Lipa: Malipo ya {amount} kwa {account} hayakufaulu. {reason} Jaribu tena: LIPA {account} {n}",
        "payment_cancelled": "Lipa: Malipo ya {amount} kwa {account} yameghairiwa. Kumb {ref}. Kulipa: LIPA {account} {n}",
        "payment_expired": "Lipa: M-Pesa haikujibu; malipo ya {amount} kwa {account} yamekwisha. Jaribu: LIPA {account} {n}",
        "payment_settled": "Lipa: Malipo {ref} ya {amount} kwa {account} yamethibitishwa kwenye taarifa ya M-Pesa.",
        "refund_initiated": "Lipa: Urejeshaji wa {amount} kwa malipo {ref} umeanza. Utapata SMS ukikamilika.",
        "refund_processing": "Lipa: Urejeshaji wa {amount} kwa malipo {ref} unashughulikiwa na M-Pesa.",
        "refund_completed": "Lipa: Urejeshaji wa {amount} kwa malipo {ref} umekamilika. Angalia salio la M-Pesa.",
        "refund_failed": "Lipa: Urejeshaji wa {amount} kwa malipo {ref} haukufaulu. Tutawasiliana nawe.",
        "refund_cancelled": "Lipa: Urejeshaji wa {amount} kwa malipo {ref} umesitishwa.",
        "reason.generic": "M-Pesa haikukubali malipo.",
    },
}

# Kiswahili words for the M-Pesa ResultCodes a customer meets most; others get the generic reason.
REASONS_SW = {
    "1": "Salio la M-Pesa halitoshi.",
    "17": "Kiasi hicho kimelipwa sasa hivi. Subiri dakika 2.",
    "1001": "Kuna malipo mengine ya M-Pesa yanaendelea.",
    "1019": "Ombi la M-Pesa limekwisha muda.",
    "1032": "Umeghairi ombi la M-Pesa.",
    "1037": "Simu yako haikupatikana.",
    "2001": "PIN ya M-Pesa si sahihi.",
}


def language_of(lang: str | None) -> str:
    return lang if lang in TEMPLATES else "en"


def reason_for(lang: str, result_code: str | None, status_message: str) -> str:
    """The failure reason in the customer's language, cut to fit."""
    if lang == "sw":
        text = REASONS_SW.get(str(result_code or ""), TEMPLATES["sw"]["reason.generic"])
    else:
        text = status_message or TEMPLATES["en"]["reason.generic"]
    return to_gsm7(text)[:REASON_MAX]


def render(kind: str, lang: str, *, amount: int, account: str, ref: str, receipt: str = "",
           reason: str = "") -> str:
    """One SMS; raises ValueError if it would not fit one GSM-7 segment (a bug, caught by the tests)."""
    lang = language_of(lang)
    text = TEMPLATES[lang][kind].format(
        amount=format_kes(amount), n=amount, account=to_gsm7(account)[:12], ref=ref,
        receipt=to_gsm7(receipt)[:12], reason=reason,
    )
    if not is_gsm7(text) or gsm7_length(text) > SMS_MAX:
        raise ValueError(f"SMS template {lang}/{kind} does not fit one GSM-7 segment ({len(text)} chars)")
    return text


MESSAGE_KINDS = tuple(k for k in TEMPLATES["en"] if not k.startswith("reason."))

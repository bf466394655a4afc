"""The e-mails' words (issue 16): the payer's receipt (English or Kiswahili, the payment's language) and
the merchant's daily settlement summary (English: it is read in an office, beside the M-Pesa statement)."""
from __future__ import annotations

from shared.money import format_kes

from .common import language_of

RECEIPT = {
    "en": ("Receipt {reference}: {amount} paid to {merchant}",
           "Thank you. {merchant} received {amount} by M-Pesa.\n\n"
           "M-Pesa receipt: {receipt}\nReference: {reference}\nAccount: {account}\nPaid: {date}\n\n"
           "Your receipt is attached (PDF).\n"),
    "sw": ("Risiti {reference}: {amount} kwa {merchant}",
           "Asante. {merchant} imepokea {amount} kwa M-Pesa.\n\n"
           "Risiti ya M-Pesa: {receipt}\nKumbukumbu: {reference}\nAkaunti: {account}\nTarehe: {date}\n\n"
           "Risiti yako imeambatishwa (PDF).\n"),
}
SETTLEMENT_SUBJECT = "Lipa settlement {day}: net {net}"
SETTLEMENT_BODY = (
    "Settlement summary for {merchant}, {day} (Nairobi time, 00:00 to 24:00 EAT)\n\n"
    "Payments collected: {collected_count}, {collected}\n"
    "Refunds:            {refund_count}, {refunds}\n"
    "Net:                {net}\n\n"
    "Collected counts money M-Pesa confirmed that day; refunds count reversals M-Pesa completed that day.\n"
)


def receipt_text(lang: str | None, **values) -> tuple[str, str]:
    """(subject, text) of the payer's receipt e-mail."""
    subject, body = RECEIPT[language_of(lang)]
    values = {**values, "amount": format_kes(values["amount"])}
    return subject.format(**values), body.format(**values)


def settlement_text(*, merchant: str, day: str, figures: dict) -> tuple[str, str]:
    """(subject, text) of a merchant's daily settlement summary."""
    values = {"merchant": merchant, "day": day, "net": format_kes(figures["net"]),
              "collected_count": figures["collected"]["count"], "collected": format_kes(figures["collected"]["amount"]),
              "refund_count": figures["refunds"]["count"], "refunds": format_kes(figures["refunds"]["amount"])}
    return SETTLEMENT_SUBJECT.format(**values), SETTLEMENT_BODY.format(**values)

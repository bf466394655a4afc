"""The refund form's rules, Qt-free: what may still go back, the amount typed checked against it, and the
reason categories (as Stripe's refund form offers them). The dialog only shows what these answer."""
from __future__ import annotations

from dataclasses import dataclass

from .models import Payment, local_time, parse_time

IN_FLIGHT = ("INITIATED", "PROCESSING")  # refunds sent or about to be: their money is already spoken for
REASONS = (("duplicate", "Duplicate payment"), ("requested_by_customer", "Requested by the customer"),
           ("fraudulent", "Fraudulent"), ("other", "Other"))
DETAILS_NEEDED = frozenset({"other"})


@dataclass(frozen=True)
class Refundable:
    """The money of one payment as the refund form shows it."""

    paid: int
    refunded: int
    in_flight: int

    @classmethod
    def of(cls, payment: Payment, refunds: list[dict]) -> Refundable:
        pending = sum(int(r.get("amount") or 0) for r in refunds if r.get("status") in IN_FLIGHT)
        return cls(paid=payment.amount, refunded=payment.refunded_amount, in_flight=pending)

    @property
    def maximum(self) -> int:
        """What may still be refunded: paid, less refunded, less refunds on their way."""
        return max(self.paid - self.refunded - self.in_flight, 0)


def check_amount(text: str, maximum: int) -> tuple[int | None, str]:
    """(amount, "") when the typed text is a whole number of shillings from 1 to ``maximum``, else (None, why).

    Nothing is ever changed silently: 5000 typed where 1,000 is refundable is refused, not cut to 1,000."""
    raw = text.strip().replace(",", "").removeprefix("KES").strip()
    if not raw:
        return None, "Type the amount to refund."
    if not raw.isdigit():
        return None, "Whole shillings only (no cents)."
    amount = int(raw)
    if amount < 1:
        return None, "The amount must be at least KES 1."
    if amount > maximum:
        return None, f"At most KES {maximum:,} can be refunded."
    return amount, ""


def reason_text(category: str, details: str) -> tuple[str | None, str]:
    """(the reason the gateway records, "") or (None, why): "Other" needs details; others may add them."""
    labels = dict(REASONS)
    if category not in labels:
        return None, "Choose a reason."
    details = " ".join(details.split())
    if category in DETAILS_NEEDED and not details:
        return None, "Say what happened (required for Other)."
    return (f"{labels[category]}: {details}" if details else labels[category]), ""


STATUS_WORDS = {"INITIATED": "requested", "PROCESSING": "sent to M-Pesa", "COMPLETED": "completed",
                "FAILED": "failed", "CANCELLED": "cancelled"}


def refund_line(refund: dict) -> str:
    """One refund as the detail lists it: "#3 · KES 200 · completed · Requested by the customer · 10:03 EAT"."""
    status = str(refund.get("status") or "")
    when = local_time(parse_time(refund.get("updated_at")))
    words = STATUS_WORDS.get(status, status.lower())
    parts = [f"#{refund.get('id')}", f"KES {int(refund.get('amount') or 0):,}", words,
             " ".join(str(refund.get("reason") or "").split()), f"{when} EAT"]
    if status == "FAILED" and refund.get("result_desc"):
        parts.insert(3, f"M-Pesa: {' '.join(str(refund['result_desc']).split())}")
    return " · ".join(part for part in parts if part)


def action_outcome(what: str, reference: str, answer: dict) -> str:
    """The message bar's words for a money action's answer: done, waiting for M-Pesa, or for a second admin."""
    if "approval" in answer:
        approval = answer["approval"]
        return (f"{what} of {reference} waits for a second admin (approval #{approval.get('id')}); nothing has "
                "moved yet.")
    if "verification" in answer:
        check = answer["verification"]
        return (f"Checking receipt {check.get('receipt')} with M-Pesa before {reference} completes; the payment "
                "changes only if M-Pesa confirms it.")
    if "payment" in answer:
        return f"{reference} resolved by hand as {answer['payment'].status}."
    return f"Refund #{answer.get('id')} of KES {int(answer.get('amount') or 0):,} for {reference} started " \
           f"({answer.get('status')})."

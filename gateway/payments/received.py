"""Money that arrived without a push of ours: the one place a payment is created already paid.

A C2B confirmation (the customer paid the paybill/till by themselves) and a statement line an admin had
M-Pesa confirm with Transaction Status both come here, so such a payment is always made the same way:
created PENDING with its event, then COMPLETED through the state machine (so the listeners run: receipt
SMS, payment request, flags), carrying M-Pesa's receipt from its first row. The caller holds the write
transaction and says what evidence it has; what is odd about the money (flags, unexpected money) stays
with the caller, which knows why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.models import Payment, PaymentRequest
from shared.states import PaymentStatus

from .service import new_reference
from .transitions import record, transition


@dataclass(frozen=True)
class Received:
    """What M-Pesa said arrived, and the evidence for it."""

    amount: int
    receipt: str
    account: str
    actor: str  # who records it ("c2b", "reconciliation")
    created_reason: str
    completed_reason: str
    description: str
    status_message: str
    phone: str = ""
    payer_hash: str | None = None
    payer_name: str | None = None
    request: PaymentRequest | None = None
    completed_by: str | None = None  # the actor of the COMPLETED event, when not ``actor``
    completed_at: datetime | None = None  # when M-Pesa says it was paid (a statement line's own date)
    created_payload: dict | None = None
    payload: dict | None = field(default=None, repr=False)  # the provider's message or the evidence


def record_received(money: Received) -> Payment:
    """A COMPLETED payment of channel c2b for money that came without a push (see the module docstring)."""
    payment = Payment.create(
        reference=new_reference(), phone=money.phone, payer_hash=money.payer_hash, payer_name=money.payer_name,
        amount=money.amount, account=money.account[:20], channel="c2b", status=PaymentStatus.PENDING.value,
        active_phone=None, request=money.request, mpesa_receipt=money.receipt, description=money.description,
        status_message=money.status_message,
    )
    record(payment, "created", actor=money.actor, reason=money.created_reason, payload=money.created_payload)
    dated = {"completed_at": money.completed_at} if money.completed_at else {}
    transition(payment, PaymentStatus.COMPLETED, actor=money.completed_by or money.actor, payload=money.payload,
               reason=money.completed_reason[:255], message=f"Paid. M-Pesa receipt {money.receipt}.", **dated)
    return payment

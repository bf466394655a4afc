"""Status change -> outbox rows, inside the change's own transaction (registered on payments.transition)."""
from __future__ import annotations

import logging

from shared.states import PaymentStatus

from ..texts.notify import reason_for, render
from . import outbox, preferences

log = logging.getLogger(__name__)
S = PaymentStatus

# Target status -> template. Refund SMS are queued by gateway.refunds (they carry the refund's own
# amount and cover refund steps that move no payment status), so refund statuses are not here.
_BY_TARGET = {
    S.PROCESSING.value: "payment_initiated",
    S.COMPLETED.value: "payment_completed",
    S.FAILED.value: "payment_failed",
    S.CANCELLED.value: "payment_cancelled",
    S.EXPIRED.value: "payment_expired",
    S.SETTLED.value: "payment_settled",
}
_OPTIONAL = {"payment_initiated": "sms_on_initiated", "payment_settled": "sms_on_settled"}


class PaymentNotifier:
    """Queues the customer's SMS for each status change; one per change (keyed by the event id)."""

    def __init__(self, config):
        self.config = config

    def __call__(self, payment, from_status: str, to_status: str, event) -> None:
        kind = self._kind(from_status, to_status)
        if kind == "payment_completed" and not payment.mpesa_receipt:
            kind = "payment_confirmed"  # confirmed by STK query: Daraja's query carries no receipt
        if kind is None or not self._wanted(kind) or not payment.phone:
            return  # a C2B payer known only by a hashed number cannot be sent an SMS
        pref = preferences.preference(payment.phone)  # once, for the language here and the opt-out in enqueue
        lang = preferences.language_of(pref, payment.language)
        text = render(kind, lang, amount=payment.amount, account=payment.account, ref=payment.reference,
                      receipt=payment.mpesa_receipt or "",
                      reason=reason_for(lang, payment.result_code, payment.status_message))
        outbox.enqueue(channel="sms", kind=kind, recipient=payment.phone, body=text, payment=payment,
                       language=lang, dedupe_key=f"sms:{payment.id}:{event.id}", preference=pref)

    @staticmethod
    def _kind(from_status: str, to_status: str) -> str | None:
        if from_status in (S.SETTLED.value, S.REFUND_PENDING.value):
            return None  # the end of a refund step: gateway.refunds tells the customer
        return _BY_TARGET.get(to_status)

    def _wanted(self, kind: str) -> bool:
        option = _OPTIONAL.get(kind)
        return option is None or bool(getattr(self.config, option))


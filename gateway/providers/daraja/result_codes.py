"""THE table of Daraja STK ResultCodes: what each one means, whether it decides the payment, and the words
the customer is told. Everything that reads a ResultCode (callbacks, the expire-pending sweep, the staff
requery, the stats) asks this module, so a code means the same thing everywhere.

"undecided" is an answer, not a failure: the customer may still be looking at the PIN prompt, so the
payment stays PROCESSING until ``LIPA_STK_HARD_LIMIT_S``. A code missing from the table is read the same
way (and alerted): telling a customer "failed" while the prompt can still be paid invites a double charge.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.states import PaymentStatus

PAID, FAILED, CANCELLED, EXPIRED, UNDECIDED = "paid", "failed", "cancelled", "expired", "undecided"
_STATUS = {PAID: PaymentStatus.COMPLETED, FAILED: PaymentStatus.FAILED, CANCELLED: PaymentStatus.CANCELLED,
           EXPIRED: PaymentStatus.EXPIRED}
UNKNOWN_KIND = "unknown_result_code"  # the alert raised for a code this table does not know


@dataclass(frozen=True)
class ResultCode:
    """One row: ``outcome`` is paid/failed/cancelled/expired/undecided; ``words`` fit an SMS reason."""

    code: str
    outcome: str
    meaning: str  # what M-Pesa means, for staff
    words: str  # what the customer is told
    alert: bool = False  # staff must look at it (a code with no documented meaning)

    @property
    def status(self) -> PaymentStatus | None:
        """The payment status this code decides, or None while undecided."""
        return _STATUS.get(self.outcome)

    @property
    def undecided(self) -> bool:
        return self.outcome == UNDECIDED


def _row(code, outcome, meaning, words, alert=False) -> tuple[str, ResultCode]:
    return code, ResultCode(code, outcome, meaning, words, alert)


CODES: dict[str, ResultCode] = dict([
    _row("0", PAID, "The payment went through.", "Paid."),
    _row("1", FAILED, "Insufficient balance.", "Not enough money in M-Pesa."),
    _row("2", FAILED, "Below the M-Pesa minimum.", "The amount is below the M-Pesa minimum."),
    _row("3", FAILED, "Above the M-Pesa maximum.", "The amount is above the M-Pesa maximum."),
    _row("4", FAILED, "Daily limit reached.", "The M-Pesa daily limit was reached."),
    _row("8", FAILED, "Account balance limit reached.", "The M-Pesa account balance limit was reached."),
    _row("17", FAILED, "M-Pesa internal limit: the same amount to the same payer within 2 minutes.",
         "The same amount was paid just now. Wait 2 minutes and retry."),
    _row("26", FAILED, "System busy: M-Pesa turned the request away under load.",
         "M-Pesa is busy. Please try again."),
    _row("1001", FAILED, "Subscriber busy or locked: another M-Pesa transaction or USSD session is open.",
         "Another M-Pesa payment is in progress. Wait a minute."),
    _row("1019", EXPIRED, "Transaction expired: the prompt was not answered in time.",
         "The M-Pesa prompt expired. Please try again."),
    _row("1025", FAILED, "Error sending the push request (e.g. a prompt too long).",
         "M-Pesa could not show the prompt. Please try again."),
    _row("1032", CANCELLED, "Request cancelled by the customer.", "You cancelled the M-Pesa prompt."),
    _row("1036", FAILED, "M-Pesa internal error.", "M-Pesa had a problem. Please try again."),
    _row("1037", FAILED, "DS timeout: the customer's phone could not be reached.",
         "Your phone could not be reached. Please try again."),
    _row("2001", FAILED, "Wrong PIN (the initiator information is invalid).", "Wrong M-Pesa PIN. Please try again."),
    _row("2028", FAILED, "The request is not permitted for this customer or shortcode.",
         "M-Pesa does not permit this payment."),
    _row("4999", UNDECIDED, "The transaction is still under processing: the prompt is not answered yet.",
         "Your payment is still being processed. Please wait."),
    _row("8006", FAILED, "The customer's security credential (PIN) is locked.", "Your M-Pesa PIN is locked."),
    _row("9999", FAILED, "Error sending the push request.", "M-Pesa could not show the prompt. Please try again."),
    _row("SFC_IC0003", FAILED, "Wrong till/paybill set-up (operator does not exist).",
         "The merchant's M-Pesa account is not set up."),
    _row("E3008", UNDECIDED, "Seen from Daraja with no published meaning: never read as a failure.",
         "Your payment is still being processed. Please wait.", alert=True),
])
# (status, words) per code, for the callers that only need the words (stats, SMS template checks).
RESULTS = {code: (row.status, row.words) for code, row in CODES.items()}


def lookup(result_code) -> ResultCode:
    """The row for a code; an unknown code is undecided and alerted, never a failure."""
    code = str(result_code).strip()
    return CODES.get(code) or ResultCode(code[:32], UNDECIDED, "Not in Lipa's table of Daraja ResultCodes.",
                                         "Your payment is still being processed. Please wait.", alert=True)


def is_undecided(result_code) -> bool:
    return lookup(result_code).undecided


def outcome(result_code) -> tuple[PaymentStatus | None, str]:
    """(status, words); the status is None for an undecided (or unknown) code."""
    row = lookup(result_code)
    return row.status, row.words


def is_success(result_code) -> bool:
    return str(result_code).strip() == "0"

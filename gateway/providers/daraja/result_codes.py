"""STK ResultCodes in plain words a customer understands, and the status each one leads to."""
from __future__ import annotations

from shared.states import PaymentStatus

# code: (status, English words for the customer). Codes arrive as numbers or strings.
RESULTS = {
    "1": (PaymentStatus.FAILED, "Not enough money in M-Pesa."),
    "2": (PaymentStatus.FAILED, "The amount is below the M-Pesa minimum."),
    "3": (PaymentStatus.FAILED, "The amount is above the M-Pesa maximum."),
    "4": (PaymentStatus.FAILED, "The M-Pesa daily limit was reached."),
    "8": (PaymentStatus.FAILED, "The M-Pesa account balance limit was reached."),
    "17": (PaymentStatus.FAILED, "The same amount was paid just now. Wait 2 minutes and retry."),
    "26": (PaymentStatus.FAILED, "M-Pesa is busy. Please try again."),
    "1001": (PaymentStatus.FAILED, "Another M-Pesa payment is in progress. Wait a minute."),
    "1019": (PaymentStatus.FAILED, "The M-Pesa prompt expired. Please try again."),
    "1025": (PaymentStatus.FAILED, "M-Pesa could not show the prompt. Please try again."),
    "1032": (PaymentStatus.CANCELLED, "You cancelled the M-Pesa prompt."),
    "1037": (PaymentStatus.FAILED, "Your phone could not be reached. Please try again."),
    "2001": (PaymentStatus.FAILED, "Wrong M-Pesa PIN. Please try again."),
    "2028": (PaymentStatus.FAILED, "M-Pesa does not permit this payment."),
    "8006": (PaymentStatus.FAILED, "Your M-Pesa PIN is locked."),
    "9999": (PaymentStatus.FAILED, "M-Pesa could not show the prompt. Please try again."),
    "SFC_IC0003": (PaymentStatus.FAILED, "The merchant's M-Pesa account is not set up."),
}


def outcome(result_code) -> tuple[PaymentStatus, str]:
    """(status, words) for a non-zero ResultCode; unknown codes fail with the code named."""
    code = str(result_code).strip()
    if code in RESULTS:
        return RESULTS[code]
    return PaymentStatus.FAILED, f"M-Pesa refused the payment (code {code[:12]})."


def is_success(result_code) -> bool:
    return str(result_code).strip() == "0"

"""Daraja's asynchronous money APIs over DarajaClient.post: reversal, B2C payment, transaction status.

Daraja only says "accepted" here; the outcome arrives later at the ResultURL (or the QueueTimeOutURL).
The SecurityCredential travels in the body and is never logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import InvalidInput
from shared.money import MAX_AMOUNT
from shared.phone import is_normalized, mask_phone

from .errors import DarajaBadResponse, DarajaError

log = logging.getLogger(__name__)

REVERSAL_PATH = "/mpesa/reversal/v1/request"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
STATUS_PATH = "/mpesa/transactionstatus/v1/query"
B2C_MIN = 10  # Daraja refuses B2C below this; the upper limit is shared.money.MAX_AMOUNT
TEXT_MAX = 100


@dataclass(frozen=True)
class AsyncAccepted:
    """Daraja queued the request; its Result will name these ids."""

    originator_conversation_id: str
    conversation_id: str
    description: str
    raw: dict


def _text(name: str, value: str, *, required: bool = True) -> str:
    """Remarks/Occasion: printable, at most 100 characters (Daraja refuses longer)."""
    text = " ".join(str(value or "").split())
    if (required and not text) or len(text) > TEXT_MAX or not text.isprintable():
        raise InvalidInput(f"{name} must be 1-{TEXT_MAX} printable characters.", code="invalid_remarks")
    return text


def _amount(amount, minimum: int) -> int:
    if type(amount) is not int or not minimum <= amount <= MAX_AMOUNT:
        raise InvalidInput(f"Amount must be a whole number of shillings from {minimum} to {MAX_AMOUNT:,}.",
                           code="invalid_amount")
    return amount


def _urls(result: str, timeout: str) -> dict:
    for url in (result, timeout):
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidInput("ResultURL and QueueTimeOutURL must be http(s) URLs.", code="invalid_callback_url")
    return {"ResultURL": result, "QueueTimeOutURL": timeout}


def accepted(answer: dict, what: str) -> AsyncAccepted:
    """Read Daraja's acknowledgement; a clear non-zero ResponseCode is a refusal, no ConversationID is unknown."""
    code = str(answer.get("ResponseCode", "")).strip()
    description = str(answer.get("ResponseDescription") or "")
    if code and code != "0":
        raise DarajaError(f"{what} refused: ResponseCode {code}: {description}", error_code=code, body=answer)
    conversation_id = answer.get("ConversationID")
    if code != "0" or not isinstance(conversation_id, str) or not conversation_id:
        raise DarajaBadResponse(f"{what} answer without ResponseCode 0 and a ConversationID", body=answer)
    return AsyncAccepted(str(answer.get("OriginatorConversationID") or ""), conversation_id, description, answer)


def reversal(daraja, *, initiator, transaction_id: str, amount: int, receiver_party: str, result: str,
             timeout: str, remarks: str, occasion: str = "") -> AsyncAccepted:
    """Ask Daraja to reverse (part of) an M-Pesa receipt back to its payer."""
    body = {
        "Initiator": initiator.name, "SecurityCredential": initiator.credential,
        "CommandID": "TransactionReversal", "TransactionID": transaction_id, "Amount": _amount(amount, 1),
        "ReceiverParty": str(receiver_party), "RecieverIdentifierType": "11",  # Daraja's own spelling
        **_urls(result, timeout), "Remarks": _text("Remarks", remarks),
        "Occasion": _text("Occasion", occasion, required=False),
    }
    answer = accepted(daraja.post(REVERSAL_PATH, body), "reversal")
    log.info("reversal of %s for KES %d accepted: %s", transaction_id, amount, answer.conversation_id)
    return answer


def b2c_payment(daraja, *, initiator, originator_conversation_id: str, amount: int, party_a: str,
                party_b: str, result: str, timeout: str, remarks: str, occasion: str = "",
                command_id: str = "BusinessPayment") -> AsyncAccepted:
    """Pay money out to a phone; the same OriginatorConversationID makes a resend safe."""
    if not is_normalized(str(party_b)):
        raise InvalidInput("PartyB must be 2547XXXXXXXX or 2541XXXXXXXX.", code="invalid_phone")
    body = {
        "OriginatorConversationID": originator_conversation_id, "InitiatorName": initiator.name,
        "SecurityCredential": initiator.credential, "CommandID": command_id, "Amount": _amount(amount, B2C_MIN),
        "PartyA": str(party_a), "PartyB": str(party_b), "Remarks": _text("Remarks", remarks),
        **_urls(result, timeout), "Occassion": _text("Occasion", occasion, required=False),  # sic
    }
    answer = accepted(daraja.post(B2C_PATH, body), "B2C payment")
    log.info("B2C of KES %d to %s accepted: %s", amount, mask_phone(party_b), answer.conversation_id)
    return answer


def transaction_status(daraja, *, initiator, transaction_id: str, party_a: str, result: str, timeout: str,
                       remarks: str = "Status check", occasion: str = "") -> AsyncAccepted:
    """Ask what became of a transaction; the answer arrives at the ResultURL."""
    body = {
        "Initiator": initiator.name, "SecurityCredential": initiator.credential,
        "CommandID": "TransactionStatusQuery", "TransactionID": transaction_id, "PartyA": str(party_a),
        "IdentifierType": "4", **_urls(result, timeout), "Remarks": _text("Remarks", remarks),
        "Occasion": _text("Occasion", occasion, required=False),
    }
    return accepted(daraja.post(STATUS_PATH, body), "transaction status")

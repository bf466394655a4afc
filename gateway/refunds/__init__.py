"""Refunds of COMPLETED or SETTLED payments by Daraja reversal or B2C (service.py), their asynchronous
Results (results.py) and the initiator's SecurityCredential (credential.py)."""
from .results import apply_result, apply_timeout, parse_result
from .service import cancel_refund, request_refund, send_refund

__all__ = ["apply_result", "apply_timeout", "cancel_refund", "parse_result", "request_refund", "send_refund"]

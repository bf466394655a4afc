"""Daraja's refusals as typed errors, so callers decide on retry/ambiguity without reading strings.

``http_status`` keeps the LipaError meaning (what *our* API answers: 502/503/504);
Daraja's own HTTP status is ``daraja_status``.
"""
from __future__ import annotations

from shared.errors import ProviderError


class DarajaError(ProviderError):
    """Daraja refused or failed; carries its errorCode, requestId and a customer-safe message."""

    code = "daraja_error"
    http_status = 502
    retry = False
    unsure = False
    customer_text = "M-Pesa could not take the payment. Please try again later."

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        request_id: str | None = None,
        daraja_status: int | None = None,
        body: dict | None = None,
        customer_message: str | None = None,
        should_retry: bool | None = None,
        ambiguous: bool | None = None,
    ):
        super().__init__(
            message,
            should_retry=self.retry if should_retry is None else should_retry,
            ambiguous=self.unsure if ambiguous is None else ambiguous,
        )
        self.error_code = error_code
        self.request_id = request_id
        self.daraja_status = daraja_status
        self.body = body or {}
        self.customer_message = customer_message or self.customer_text


class DarajaAuthError(DarajaError):
    """Our consumer key/secret or OAuth request is wrong: staff must fix the configuration."""

    code = "daraja_auth"
    customer_text = "M-Pesa payments are not available right now. Please try later."


class InvalidAccessToken(DarajaError):
    """The bearer token is stale or was replaced; refresh once and retry."""

    code = "daraja_invalid_token"
    customer_text = "M-Pesa is busy. Please try again in a minute."


class InvalidRequest(DarajaError):
    """Daraja refused a field or the payload; sending it again will not help."""

    code = "daraja_invalid_request"
    customer_text = "M-Pesa could not start the payment. Please check the details."


class SubscriberLocked(DarajaError):
    """The customer already has an M-Pesa transaction open; they must wait a minute."""

    code = "subscriber_locked"
    customer_text = "You have a payment in progress. Wait 1 minute and try again."


class TransactionInProgress(DarajaError):
    """Still being processed: for an STK query this means pending, not failed."""

    code = "transaction_in_progress"
    customer_text = "Your payment is still being processed. Please wait."


class MerchantNotFound(DarajaError):
    """The shortcode is not set up for this API: a configuration problem."""

    code = "merchant_not_found"
    customer_text = "This business cannot take M-Pesa payments right now."


class SpikeArrest(DarajaError):
    """Daraja throttled us; the same request may be sent again after a pause."""

    code = "daraja_spike_arrest"
    http_status = 503
    retry = True
    customer_text = "M-Pesa is busy. Please try again in a minute."


class QuotaExceeded(DarajaError):
    """Our API quota is used up; retrying now will not help."""

    code = "daraja_quota"
    http_status = 503
    customer_text = "M-Pesa is busy. Please try again later."


class DarajaInternalError(DarajaError):
    """Daraja answered that it failed inside: a refusal, not a silence, so not ambiguous."""

    code = "daraja_internal"
    customer_text = "M-Pesa is having a problem. Please try again later."


class DarajaUnavailable(DarajaError):
    """The request never reached Daraja (refused, DNS, connect timeout): safe to send again."""

    code = "daraja_unavailable"
    http_status = 503
    retry = True
    customer_text = "M-Pesa cannot be reached. Please try again in a minute."


class DarajaTimeout(DarajaError):
    """Sent but no answer in time: the push may have gone through, so never resend blindly."""

    code = "daraja_timeout"
    http_status = 504
    unsure = True
    customer_text = "M-Pesa is slow. Please wait for the prompt on your phone."


class DarajaBadResponse(DarajaError):
    """An answer we cannot read (HTML, garbage, missing fields): we cannot know what happened."""

    code = "daraja_bad_response"
    unsure = True
    customer_text = "M-Pesa did not answer clearly. Wait for the prompt on your phone."


_BY_CODE: dict[str, type[DarajaError]] = {
    "400.008.01": DarajaAuthError,
    "400.008.02": DarajaAuthError,
    "404.001.03": InvalidAccessToken,
    "400.002.02": InvalidRequest,
    "400.002.05": InvalidRequest,
    "500.003.02": SpikeArrest,
    "500.003.03": QuotaExceeded,
    "500.003.1001": DarajaInternalError,
}

# 500.001.1001 means several things; Daraja only tells them apart in errorMessage.
_BY_MESSAGE: tuple[tuple[str, type[DarajaError]], ...] = (
    ("unable to lock subscriber", SubscriberLocked),
    ("being processed", TransactionInProgress),
    ("merchant does not exist", MerchantNotFound),
    ("wrong credentials", DarajaAuthError),
)


def _class_for(http_status: int, error_code: str | None, message: str) -> type[DarajaError]:
    """Pick the class from errorCode, then errorMessage, then the HTTP status."""
    if error_code == "500.001.1001" or (error_code is None and message):
        lowered = message.lower()
        for needle, cls in _BY_MESSAGE:
            if needle in lowered:
                return cls
    if error_code in _BY_CODE:
        return _BY_CODE[error_code]
    if error_code:
        return DarajaError
    if http_status == 401:
        return DarajaAuthError
    return DarajaInternalError


def error_from_response(http_status: int, body: dict | None, text: str) -> DarajaError:
    """Turn a refused HTTP answer into the matching typed error (unknown codes keep their code)."""
    if not isinstance(body, dict):
        if http_status == 401:
            return DarajaAuthError("Daraja refused our credentials (HTTP 401)", daraja_status=401)
        snippet = " ".join((text or "").split())[:120]
        return DarajaBadResponse(
            f"Daraja answered HTTP {http_status} with an unreadable body: {snippet!r}",
            daraja_status=http_status,
        )
    error_code = body.get("errorCode")
    error_code = str(error_code) if error_code not in (None, "") else None
    message = str(body.get("errorMessage") or body.get("error_description") or "")
    cls = _class_for(http_status, error_code, message)
    if cls is DarajaInternalError and error_code is None and http_status < 500:
        cls = DarajaBadResponse
    return cls(
        f"Daraja HTTP {http_status} {error_code or '-'}: {message or 'no message'}",
        error_code=error_code,
        request_id=body.get("requestId"),
        daraja_status=http_status,
        body=body,
    )

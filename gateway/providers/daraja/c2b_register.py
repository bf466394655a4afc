"""Registering our C2B validation and confirmation URLs with Daraja (once per shortcode, by staff)."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from shared.errors import InvalidInput

from .errors import DarajaBadResponse

log = logging.getLogger(__name__)
REGISTER_PATH = "/mpesa/c2b/v2/registerurl"
RESPONSE_TYPES = ("Completed", "Cancelled")
# Daraja refuses production URLs containing any of these words.
FORBIDDEN_WORDS = ("mpesa", "safaricom", "sql", "query", "exec", "cmd")
PRODUCTION_HOST = "api.safaricom.co.ke"


def c2b_urls(public_url: str, token: str) -> tuple[str, str]:
    """(confirmation, validation) URLs as this gateway serves them: fine for the simulator and sandbox."""
    base = public_url.rstrip("/")
    return f"{base}/mpesa/c2b/confirmation/{token}", f"{base}/mpesa/c2b/validation/{token}"


def check_url(name: str, url, *, production: bool) -> str:
    """An http(s) URL; in production https and free of the words Daraja refuses."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{name} must be an http(s) URL.", code="invalid_url")
    if not production:
        return url
    if parts.scheme != "https":
        raise InvalidInput(f"{name} must use https in production.", code="invalid_url")
    found = [word for word in FORBIDDEN_WORDS if word in url.lower()]
    if found:
        raise InvalidInput(f"{name} must not contain {', '.join(found)} (Daraja refuses it).", code="invalid_url")
    return url


def register_c2b_urls(client, *, shortcode, confirmation_url: str, validation_url: str,
                      response_type: str = "Completed", production: bool | None = None) -> dict:
    """Tell Daraja where to send C2B validation and confirmation calls; returns Daraja's answer.

    The URLs are sent exactly as given. Our own routes live under ``/mpesa/c2b/...``, and Daraja
    refuses production URLs containing "mpesa", so in production a reverse proxy must expose them
    under a neutral public path (e.g. ``https://pay.example.com/lipa/c2b/confirm/<token>`` forwarded
    to ``/mpesa/c2b/confirmation/<token>``) and those public URLs are what is registered here.
    ``production`` defaults to whether the client talks to Safaricom's production host.
    ``response_type`` is what M-Pesa does when our validation URL cannot be reached.
    """
    if production is None:
        production = urlsplit(getattr(client, "base_url", "")).hostname == PRODUCTION_HOST
    if response_type not in RESPONSE_TYPES:
        raise InvalidInput("response_type must be Completed or Cancelled.", code="invalid_response_type")
    if not str(shortcode).isdigit():
        raise InvalidInput("shortcode must be digits.", code="invalid_shortcode")
    body = {
        "ShortCode": str(shortcode), "ResponseType": response_type,
        "ConfirmationURL": check_url("ConfirmationURL", confirmation_url, production=production),
        "ValidationURL": check_url("ValidationURL", validation_url, production=production),
    }
    answer = client.post(REGISTER_PATH, body)
    if str(answer.get("ResponseCode", "0")) != "0":
        raise DarajaBadResponse(f"C2B URL registration not accepted: {answer.get('ResponseDescription')!r}",
                                body=answer, ambiguous=False)
    log.info("C2B URLs registered for shortcode %s (%s)", shortcode, response_type)
    return answer

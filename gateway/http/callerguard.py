"""Who may call the provider endpoints: one rule for M-Pesa's and Africa's Talking's (issue 13).

Every provider blueprint is ``protect``-ed: before any view runs (so nothing is stored), the caller's
address is checked against the allowlist (MPESA_ALLOWED_IPS, AT_ALLOWED_IPS; empty = no check), then
the secret path segment against the token (MPESA_CALLBACK_TOKEN, AT_CALLBACK_TOKEN). Both refusals are
the very 404 an unknown URL gets, so the answer never tells a stranger that a token was right or that
the address was the problem. Wrong tokens are counted per address: past FAILED_TOKENS in a window,
every call from that address is a 429 until the window ends (a right guess then gains nothing).

Africa's Talking's token is a URL prefix, ``/at/<token>/ussd`` …: ``at_prefix`` gives the prefix its
blueprints are registered under (none when no token is set, so the local quick start keeps /ussd), and
``at_path`` the path a simulator or the phone CLI posts to.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import NotFound

from ..providers.daraja.urls import token_matches
from .errors import error_json
from .ratelimit import Limit, RateLimited, hit, over

log = logging.getLogger(__name__)
FAILED_TOKENS = Limit(20, 900)  # wrong tokens per client address per 15 minutes
AT_TOKEN_ARG = "at_token"


@dataclass(frozen=True)
class Door:
    """One provider's lock: its allowlist, the expected token (None: no token check), where the given one is."""

    name: str
    allowed: Callable[[object], tuple]  # Services -> addresses or CIDRs
    expected: Callable[[object], str | None]  # Services -> the token, None when there is none
    given_arg: str  # the URL variable holding the caller's token


MPESA = Door("mpesa", lambda s: s.config.mpesa_allowed_ips, lambda s: s.callback_token, "token")
AT = Door("at", lambda s: s.config.at_allowed_ips, lambda s: s.config.at_callback_token or None, AT_TOKEN_ARG)


def protect(bp: Blueprint, door: Door) -> Blueprint:
    """Refuse a caller before any view of ``bp`` runs; the AT token is taken out of the view's arguments."""

    @bp.url_value_preprocessor
    def _take_token(endpoint, values):
        if values is not None and door.given_arg == AT_TOKEN_ARG:
            g.lipa_caller_token = values.pop(AT_TOKEN_ARG, None)
        elif values is not None:
            g.lipa_caller_token = values.get(door.given_arg)

    @bp.before_request
    def _guard():
        return refusal(door)

    return bp


def refusal(door: Door):
    """None when the caller may go on, else the response (404 like an unknown URL, or 429)."""
    services = current_app.extensions["lipa"]
    remote = request.remote_addr or ""
    if not address_allowed(remote, door.allowed(services)):
        log.warning("%s callback from %s not on the allowlist refused", door.name, remote)
        return not_found()
    expected = door.expected(services)
    if expected is None:
        return None
    bucket = f"callback-token:{remote}"
    limited = services.config.api_rate_limits
    try:
        if not token_matches(g.get("lipa_caller_token") or "", expected):
            log.warning("%s callback with a wrong token from %s refused", door.name, remote)
            if limited:
                hit(bucket, FAILED_TOKENS)
            return not_found()
        if limited and over(bucket, FAILED_TOKENS):
            raise RateLimited("Too many failed attempts; retry later.", FAILED_TOKENS.window_s)
    except RateLimited as exc:
        log.warning("%s callbacks from %s refused: too many wrong tokens", door.name, remote)
        response, status = error_json(exc.code, exc.message, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response, status
    return None


def not_found():
    """Exactly what an unknown URL answers (gateway/http/errors.py renders NotFound so)."""
    return error_json("not_found", NotFound.description, 404)


def address_allowed(remote: str, allowed: tuple) -> bool:
    """Empty allowlist: anyone. Else the address must be one of them or inside one of the networks."""
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(allowed)))


@functools.lru_cache(maxsize=16)
def _networks(allowed: tuple) -> tuple:
    """The allowlist parsed once (a setting, so a handful of tuples at most): parsing Safaricom's dozen
    addresses on every callback cost more than the rest of the check."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in allowed)


def at_prefix(token: str, blueprint_prefix: str | None = None) -> str:
    """The URL prefix an AT blueprint is registered under: /at/<token> when a token is set."""
    return (f"/at/<{AT_TOKEN_ARG}>" if token else "") + (blueprint_prefix or "")


def at_path(token: str, path: str) -> str:
    """Where AT (or a simulator of it) posts ``path`` ("/ussd", "/sms/delivery" …) on this gateway."""
    return f"/at/{token}{path}" if token else path

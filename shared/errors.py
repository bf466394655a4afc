"""One small error hierarchy; each channel renders it (JSON for the API, END for USSD, a reply for SMS)."""
from __future__ import annotations


class LipaError(Exception):
    """Base error: knows its HTTP status and a stable machine-readable code."""

    http_status = 400
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status

    def to_json(self) -> dict:
        """The API's error body."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(LipaError):
    """The caller sent something we cannot accept; the message says what and why."""

    code = "invalid_input"


class NotAllowed(LipaError):
    """The request is well-formed but the current state forbids it."""

    http_status = 409
    code = "not_allowed"


class NotFound(LipaError):
    http_status = 404
    code = "not_found"


class InvalidTransition(NotAllowed):
    """A status change the state machine does not allow."""

    code = "invalid_transition"


class ProviderError(LipaError):
    """A provider (Daraja, Africa's Talking) refused or failed.

    ``should_retry``: the same request may safely be sent again.
    ``ambiguous``: we cannot know whether the provider acted on it.
    """

    http_status = 502
    code = "provider_error"

    def __init__(self, message: str, *, should_retry: bool = False, ambiguous: bool = False, **kw):
        super().__init__(message, **kw)
        self.should_retry = should_retry
        self.ambiguous = ambiguous


class SendFailed(ProviderError):
    """A message we send out (SMS, webhook, e-mail) that its provider did not take. Each channel names its
    own subclasses (its dispatcher lane tells them apart); ``retry`` on the class is whether sending it again
    later may work, ``status_code`` the provider's code when it gave one."""

    retry = False
    not_sent = "not sent"  # the message's first words, per channel

    def __init__(self, reason: str, *, status_code: int | None = None, ambiguous: bool = False):
        super().__init__(f"{self.not_sent}: {reason}", should_retry=self.retry, ambiguous=ambiguous)
        self.status_code = status_code
        self.reason = reason


class ConfigError(Exception):
    """A wrong or missing setting; start-up stops with exit code 2 naming the variable."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable

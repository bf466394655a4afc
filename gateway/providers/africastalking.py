"""The one adapter over Africa's Talking's official SDK: one message to one phone, typed outcomes.

The SDK has no base-URL setting, so a local fake is reached by setting the service's ``_baseUrl``
here and nowhere else. The api key is never logged and phones only masked.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService

from shared.errors import SendFailed
from shared.phone import mask_phone, to_international

log = logging.getLogger(__name__)

ACCEPTED = {100: "Processed", 101: "Success", 102: "Queued"}
RETRYABLE = {401: "RiskHold", 405: "InsufficientBalance", 407: "CouldNotRoute",
             500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway"}
PERMANENT = {402: "InvalidSenderId", 403: "InvalidPhoneNumber", 404: "UnsupportedNumberType",
             406: "UserInBlacklist", 409: "DoNotDisturbRejection"}
DEFAULT_TIMEOUT = (3.05, 9.05)


@dataclass(frozen=True)
class SmsResult:
    """AT accepted the message for this recipient (accepted, not yet delivered)."""

    message_id: str
    status_code: int
    status: str
    cost: str


class SmsError(SendFailed):
    """AT did not accept the message; ``status_code`` is AT's per-recipient code when it gave one."""

    code = "sms_error"
    not_sent = "SMS not sent"


class SmsRetryable(SmsError):
    """Network trouble, an HTTP error or a temporary refusal: sending again later may work."""

    code = "sms_retryable"
    retry = True


class SmsPermanent(SmsError):
    """The number, sender id or recipient's settings refuse it: sending again will not help."""

    code = "sms_permanent"


class KeptAliveSMSService(SMSService):
    """The SDK's SMS service, its POSTs on kept-alive connections. The SDK sends each message with
    ``requests.post``: a new TCP connection, and against the real API a TLS handshake, per SMS (not measured
    here: the simulator closes every connection). The SDK still builds every request (URL, headers, form);
    only the transport is a ``requests.Session``, one per sender thread, with the SDK's own answer handling."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sessions = threading.local()

    def _make_request(self, url, method, headers, data, params, callback=None, timeout=DEFAULT_TIMEOUT):
        if callback is not None or method.upper() != "POST":
            return super()._make_request(url, method, headers, data, params, callback=callback, timeout=timeout)
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = _session_for(url)
        res = session.post(url=url, headers=headers, params=params, data=data, timeout=timeout)
        if not 200 <= res.status_code < 300:
            raise AfricasTalkingException(res.text)
        return res.json() if res.headers.get("content-type") == "application/json" else res.text


def _session_for(url: str) -> requests.Session:
    """A session with the environment's proxy and CA-bundle settings read once, when it is made: requests
    reads them (every variable of the environment, and ~/.netrc) again on every request otherwise, a sixth of
    an SMS's CPU (measured against the simulator). The SDK's requests carry their own key, so netrc is not
    wanted; a proxy or CA bundle changed while the gateway runs takes effect at its next start."""
    session = requests.Session()
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    return session


class SmsSender:
    """Sends SMS through the official SDK; every failure comes out as SmsRetryable or SmsPermanent."""

    def __init__(self, *, username: str, api_key: str, sender_id: str | None = None,
                 base_url: str | None = None, timeout=DEFAULT_TIMEOUT):
        self.service = KeptAliveSMSService(username, api_key)
        if base_url:
            self.service._baseUrl = base_url.rstrip("/") + "/version1"
        self.sender_id = sender_id or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmsSender(url={self.service._baseUrl!r}, sender_id={self.sender_id!r})"

    def send(self, phone: str, message: str) -> SmsResult:
        """Send one message to one phone; raises SmsRetryable/SmsPermanent unless AT accepted it."""
        answer = self._post(to_international(phone), message)
        result = _result_from(answer)
        log.info("sms to %s accepted: %s %s (%s)", mask_phone(phone), result.message_id, result.status, result.cost)
        return result

    def _post(self, number: str, message: str):
        """Call the SDK and turn its exceptions into ours (the SDK's messages may hold the number)."""
        try:
            return self.service.send(message, [number], sender_id=self.sender_id, timeout=self.timeout)
        except ValueError:
            raise SmsPermanent("invalid phone number", status_code=403) from None
        except AfricasTalkingException as exc:
            raise SmsRetryable(f"AT refused the request: {_snippet(str(exc))}") from None
        except requests.Timeout as exc:
            ambiguous = not isinstance(exc, requests.ConnectTimeout)
            raise SmsRetryable(f"AT timed out ({type(exc).__name__})", ambiguous=ambiguous) from None
        except requests.RequestException as exc:
            raise SmsRetryable(f"AT unreachable ({type(exc).__name__})") from None


def _result_from(answer) -> SmsResult:
    """Read AT's JSON answer for our single recipient; anything unexpected is retryable."""
    if not isinstance(answer, dict):
        raise SmsRetryable(f"AT answered something that is not JSON: {_snippet(str(answer))}", ambiguous=True)
    data = answer.get("SMSMessageData")
    recipients = data.get("Recipients") if isinstance(data, dict) else None
    if not recipients:
        note = str(data.get("Message", "")) if isinstance(data, dict) else ""
        if "InvalidSenderId" in note:  # AT answers a bad sender id with no recipients at all
            raise SmsPermanent("InvalidSenderId", status_code=402)
        raise SmsRetryable(f"AT answered without recipients: {_snippet(note)}", ambiguous=True)
    first = recipients[0] if isinstance(recipients[0], dict) else {}
    try:
        code = int(first.get("statusCode"))
    except (TypeError, ValueError):
        raise SmsRetryable("AT answered without a statusCode", ambiguous=True) from None
    status = str(first.get("status") or "")
    if code in ACCEPTED:
        message_id, cost = str(first.get("messageId") or ""), str(first.get("cost") or "")
        return SmsResult(message_id, code, status or ACCEPTED[code], cost)
    if code in PERMANENT:
        raise SmsPermanent(f"{code} {status or PERMANENT[code]}", status_code=code)
    raise SmsRetryable(f"{code} {status or RETRYABLE.get(code, 'unknown status')}", status_code=code)


def _snippet(text: str) -> str:
    """A short one-line excerpt of a provider's answer for logs and failure reasons."""
    return " ".join(text.split())[:100]

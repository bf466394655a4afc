"""Where the gateway's outbound calls to merchants may go (issue 13, finding 3: server-side request forgery).

A payment request's ``callback_url`` is the merchant's, but the gateway is the one that POSTs to it: left
open, ``http://127.0.0.1:8000/api/…``, ``http://169.254.169.254/`` (cloud metadata) or a host inside the
private network is reached from inside. So, outside the local profile:

* the URL is ``https://``, names no ``user:pass@``, and its host resolves only to public addresses
  (loopback, private, link-local, shared, reserved, multicast and unspecified ones refused; numeric
  forms such as ``2130706433``, ``127.1`` or ``0x7f000001`` are read as the address they stand for);
* checked when the request is created (``OutboundPolicy.check_url``, a 400 naming the rule) and again
  when the webhook connects (``pinned_session``): the host is resolved once, every address checked, and
  the socket opened to the checked address, while TLS still verifies the certificate for the host name
  (SNI and Host unchanged). A name that resolves public at creation and 127.0.0.1 at send time (DNS
  rebinding) is never called. Redirects are not followed (gateway/providers/webhooks.py).
* ``LIPA_WEBHOOK_ALLOW`` (hosts or CIDRs) lets named hosts or networks be reached though private, and
  over plain http: a merchant inside the same private network, or a test.

The local profile allows any http(s) URL (the demo and the tests post to 127.0.0.1), but never
``user:pass@``.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import create_connection

from shared.errors import InvalidInput

MAX_URL = 500
ALLOW_SETTING = "LIPA_WEBHOOK_ALLOW"


class OutboundRefused(InvalidInput):
    """An outbound URL or address the policy does not allow; the message names the rule."""

    code = "callback_url_refused"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (tests replace this function to play DNS)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _literal(host: str):
    """The address a numeric host stands for (any form the C resolver accepts), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))  # 2130706433, 127.1, 0x7f000001, 0177.0.0.1
    except (OSError, ValueError):
        return None


def _public(address) -> bool:
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    """The rule for one gateway: ``local`` allows anything http(s); ``allow`` holds LIPA_WEBHOOK_ALLOW."""

    local: bool = True
    allow: tuple = ()

    @classmethod
    def from_config(cls, config) -> "OutboundPolicy":
        return cls(local=config.is_local, allow=tuple(item.lower() for item in config.webhook_allow))

    def _networks(self):
        for item in self.allow:
            try:
                yield ipaddress.ip_network(item, strict=False)
            except ValueError:
                continue  # a host name

    def check_url(self, url) -> str | None:
        """The URL as given if it may be called (None for none); else OutboundRefused naming the rule."""
        if url is None or url == "":
            return None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > MAX_URL:
            raise InvalidInput(f"callback_url must be an http(s) URL of at most {MAX_URL} characters.",
                               code="invalid_url")
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidInput("callback_url is not a valid URL.", code="invalid_url") from None
        if "@" in parts.netloc:
            raise OutboundRefused("callback_url must not carry a user name or password (user:pass@).")
        if not parts.hostname:
            raise InvalidInput("callback_url has no host.", code="invalid_url")
        if not self.local:
            self.vet(parts.hostname, port, scheme=parts.scheme)
        return url

    def vet(self, host: str, port: int, *, scheme: str = "https") -> list[str]:
        """The addresses to connect to for ``host``, once every address it resolves to is checked."""
        host = host.rstrip(".").lower()
        if self.local or host in self.allow:
            return self._addresses(host, port)
        networks = list(self._networks())
        if scheme != "https" and not networks:  # plain http only where LIPA_WEBHOOK_ALLOW says so
            raise OutboundRefused(f"callback_url must be https:// (or its host listed in {ALLOW_SETTING}).")
        addresses = self._addresses(host, port)
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            inside = any(address in network for network in networks)
            if scheme != "https" and not inside:
                raise OutboundRefused(f"callback_url must be https:// (or its host listed in {ALLOW_SETTING}).")
            if not (inside or _public(address)):
                raise OutboundRefused("callback_url's host must resolve only to public addresses "
                                      f"(not {address}; a private network must be listed in {ALLOW_SETTING}).")
        return addresses

    @staticmethod
    def _addresses(host: str, port: int) -> list[str]:
        literal = _literal(host)
        try:
            addresses = [str(literal)] if literal is not None else resolve(host, port)
        except OSError:
            addresses = []
        if not addresses:
            raise OutboundRefused("callback_url's host does not resolve.")
        return addresses


# --- connect time: resolve, check, connect to the checked address -------------------------------


class _Pinned:
    """A urllib3 connection that opens its socket to the address its policy vetted just now."""

    policy: OutboundPolicy
    scheme = "http"

    def _new_conn(self) -> socket.socket:
        failure = None
        for address in self.policy.vet(self.host, self.port, scheme=self.scheme):  # OutboundRefused passes through
            try:
                sock = create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except OSError as exc:
                failure = exc
            else:
                _watch(sock)  # under a Deadline, shut down when it passes (before urllib3 holds it)
                return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {failure}")


class _Watched:
    """A pool whose every connection handed out, new or kept alive, is under the thread's Deadline."""

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        _watch(connection)
        return connection


def _pool_classes(policy: OutboundPolicy) -> dict:
    http_conn = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), {"policy": policy, "scheme": "http"})
    https_conn = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), {"policy": policy, "scheme": "https"})
    return {"http": type("PinnedHTTPPool", (_Watched, HTTPConnectionPool), {"ConnectionCls": http_conn}),
            "https": type("PinnedHTTPSPool", (_Watched, HTTPSConnectionPool), {"ConnectionCls": https_conn})}


class PinnedAdapter(HTTPAdapter):
    """requests' adapter with pinned connections (TLS still checks the certificate for the host name)."""

    def __init__(self, policy: OutboundPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)


def pinned_session(policy: OutboundPolicy) -> requests.Session:
    """A session whose every connection is vetted at connect time; no proxy from the environment (a proxy
    would resolve the name itself, after our check)."""
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- a total deadline per request (issue 15): a per-read timeout never fires against a trickle ----------

_watching = threading.local()


class Deadline:
    """A watchdog for one outbound request: once ``seconds`` pass, every connection this thread opened
    under it has its socket shut down, so a server trickling one byte a second cannot hold the sender
    (urllib3's timeouts are per read and restart with every byte). ``fired`` says whether it did."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self._targets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        _watching.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _watching.deadline = None

    def watch(self, target) -> None:
        """A connection (or the raw socket it is opening) to shut down at the deadline; at once if passed."""
        with self._lock:
            self._targets.append(target)
            fired = self.fired
        if fired:
            _shut(target)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            targets = list(self._targets)
        for target in targets:
            _shut(target)


def _shut(target) -> None:
    """shutdown() (not close()) wakes a recv blocked in another thread; that request then fails."""
    sock = target if isinstance(target, socket.socket) else getattr(target, "sock", None)
    if sock is not None and sock.fileno() != -1:  # a raw socket TLS has wrapped is detached (-1)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _watch(connection) -> None:
    deadline = getattr(_watching, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)

"""Local SMTP sink (issue 16): a real SMTP server (aiosmtpd) that keeps every mail it is given, for the
offline demo, the terminal phone (``inbox --email``) and the tests.

- SMTP on ``sink.host:sink.port`` (``sink.url`` is the ``smtp://`` URL for LIPA_SMTP_URL); no auth, no TLS.
- ``sink.fail_next(count, code=421)``, or ``POST /mail/simulator/faults {"count", "code"}``: the next
  ``count`` mails are refused at DATA with that code (421: the server is going away, try later).
- ``GET /mail/simulator/messages?to=<address>&since=<seq>``: the mails kept, oldest first, each with
  seq, time, from, to, subject, text and its attachments (file name, type, size).
- ``sink.messages(...)`` returns the same with the raw bytes (tests parse them with the email package).
aiosmtpd, because it is the maintained successor of the standard library's removed smtpd: a complete
SMTP server on asyncio, on a thread of its own, in a few lines.
"""
from __future__ import annotations

import logging
import socket
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from flask import Flask, jsonify, request

from shared.timeutil import iso, utcnow

MAX_KEPT = 500  # a demo that runs for days keeps the newest mails only


class MailSink:
    """The handler aiosmtpd calls, and the mails it was given; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._mails: list[dict] = []
        self._seq = 0
        self._failures: list[int] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        """Keep the mail (or refuse it, when a fault is pending)."""
        with self._lock:
            if self._failures:
                return f"{self._failures.pop(0)} Service not available, try again later"
            self._seq += 1
            self._mails.append({"seq": self._seq, "time": iso(utcnow()), "from": envelope.mail_from,
                                "to": list(envelope.rcpt_tos), "raw": bytes(envelope.original_content
                                                                             or envelope.content)})
            del self._mails[:-MAX_KEPT]
        return "250 Message accepted for delivery"

    def fail_next(self, count: int = 1, code: int = 421) -> None:
        if not 400 <= int(code) <= 599:
            raise ValueError("code must be an SMTP error, 400-599")
        with self._lock:
            self._failures = [int(code)] * int(count)

    def messages(self, to: str | None = None, since: int = 0) -> list[dict]:
        """Mails after seq ``since``, to ``to`` if given (case-insensitive)."""
        with self._lock:
            mails = [dict(m) for m in self._mails if m["seq"] > since]
        if to:
            mails = [m for m in mails if to.lower() in (r.lower() for r in m["to"])]
        return mails

    def reset(self) -> None:
        with self._lock:
            self._mails.clear()
            self._failures.clear()


def summary(mail: dict) -> dict:
    """A kept mail as JSON: headers, the text part and what is attached (not the attachment's bytes)."""
    parsed = message_from_bytes(mail["raw"], policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    return {"seq": mail["seq"], "time": mail["time"], "from": mail["from"], "to": mail["to"],
            "subject": str(parsed["Subject"] or ""), "message_id": str(parsed["Message-ID"] or ""),
            "text": text.get_content() if text is not None else "",
            "attachments": [{"filename": part.get_filename(), "type": part.get_content_type(),
                             "size": len(part.get_payload(decode=True) or b"")}
                            for part in parsed.iter_attachments()]}


class SmtpSink:
    """A MailSink served by aiosmtpd on its own thread; start() and stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port or _free_port(host)
        self.sink = MailSink()
        quiet = logging.getLogger("mail.log")  # aiosmtpd logs every line of every mail at DEBUG, sessions at INFO
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        self._controller = Controller(self.sink, hostname=host, port=self.port, ready_timeout=10)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop(no_assert=True)  # safe when never started or stopped already


def create_mail_sim(sink: MailSink) -> Flask:
    """The sink's HTTP side: read the kept mails, queue refusals, reset."""
    app = Flask("mail_sim")

    @app.get("/simulator/messages")
    def sim_messages():
        since = request.args.get("since", "0")
        mails = sink.messages(request.args.get("to") or None, int(since) if since.isdigit() else 0)
        return jsonify([summary(m) for m in mails])

    @app.post("/simulator/faults")
    def sim_faults():
        body = request.get_json(silent=True) or {}
        try:
            sink.fail_next(int(body.get("count", 1)), int(body.get("code", 421)))
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(ok=True)

    @app.post("/simulator/reset")
    def sim_reset():
        sink.reset()
        return jsonify(ok=True)

    return app


def _free_port(host: str) -> int:
    """A port free now (aiosmtpd's Controller checks readiness by connecting, so it needs a real one)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]

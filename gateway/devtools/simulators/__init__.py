"""Built-in local fakes of Daraja (M-Pesa) and Africa's Talking: real HTTP servers, so a demo
runs on a fresh machine with no credentials and no internet, and tests use real HTTP.

Public API (re-exported at the bottom):
- ``start_simulators(...) -> SimulatorServer`` (server.py): both fakes on one port, at
  ``.daraja_url`` and ``.at_url``, states at ``.daraja`` and ``.at``.
- ``create_daraja_sim(...)`` / ``DarajaSimState`` (daraja.py; outcome table in its docstring).
- ``create_at_sim(...)`` / ``ATSimState`` (africastalking.py).
- ``SmtpSink`` / ``MailSink`` (smtp_sink.py): an SMTP server keeping every mail, read at ``.mail_url``.

The small helpers below are shared by both fakes. The simulators import nothing from the rest
of the gateway (only ``shared.timeutil``): they are independent stand-ins for the real services.
"""
from __future__ import annotations

import logging
import threading

from flask import Flask, Response, jsonify, request

log = logging.getLogger("lipa.simulators")
SLOW_SECONDS = 5.0


def json_body() -> dict | None:
    """The request's JSON object, or None when the body is not one (so callers answer 400)."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def daemon_timer(delay: float, func, *args) -> threading.Timer:
    """Start a daemon timer, so a pending callback never keeps the process alive."""
    timer = threading.Timer(max(delay, 0.0), func, args=args)
    timer.daemon = True
    timer.start()
    return timer


def safe_post(post, url: str, **kwargs):
    """Post a callback; never raise (it runs on timer threads). Returns the HTTP status or the error."""
    try:
        response = post(url, timeout=10, **kwargs)
        return response.status_code
    except Exception as exc:  # noqa: BLE001 - a fake must survive a dead receiver
        log.warning("simulator could not post to %s: %r", url, exc)
        return repr(exc)


class SimState:
    """What both simulators' state does on reset and on close. A subclass has ``lock``, ``wake`` (the event
    slow requests wait on), ``_clear()`` (forget what it remembers) and ``_cancel_scheduled()`` (its timers)."""

    def reset(self) -> None:
        """Forget what was received, overrides and faults; cancel what is scheduled; wake slow requests."""
        with self.lock:
            self._cancel_scheduled()
            self._clear()
            self.wake.set()
            self.wake = threading.Event()

    def close(self) -> None:
        """Stop for good: nothing scheduled will be posted any more."""
        self.reset()
        with self.lock:
            self.wake.set()


class FaultQueue:
    """Whole-request faults waiting for a fake's next requests: ``set(target, fault, count)`` makes the next
    ``count`` requests to ``target`` fail with ``fault``; ``take(target)`` consumes one. Thread-safe."""

    def __init__(self, targets, faults):
        self.targets, self.faults = tuple(targets), tuple(faults)
        self._lock = threading.Lock()
        self._pending: dict[str, list] = {}

    def set(self, target: str, fault: str, count: int = 1) -> None:
        if target not in self.targets or fault not in self.faults:
            raise ValueError(f"use a target in {self.targets} and a fault in {self.faults}")
        with self._lock:
            self._pending[target] = [fault, int(count)]

    def take(self, target: str) -> str | None:
        """Consume one pending fault for ``target``, if any."""
        with self._lock:
            entry = self._pending.get(target)
            if not entry or entry[1] <= 0:
                return None
            entry[1] -= 1
            return entry[0]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


def fault_response(state, target: str, render) -> Response | None:
    """Apply one pending fault of ``state.faults``: slow sleeps then answers normally, garbage answers HTML,
    any other fault answers render(fault). None when no fault is pending."""
    fault = state.faults.take(target)
    if fault == "slow":
        woken = state.wake.wait(SLOW_SECONDS)
        return Response("Service Unavailable", 503, mimetype="text/plain") if woken else None
    if fault == "garbage":
        return Response("<html>oops</html>", 200, mimetype="text/html")
    return None if fault is None else render(fault)


def _setter_view(setter):
    def view():
        try:
            setter(request.get_json(silent=True) or {})
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(ok=True)
    return view


def control_routes(app: Flask, state, setters: dict, listing: tuple) -> None:
    """Add the /simulator/* control endpoints: one POST per setter, a GET listing, reset and fire."""
    for name, setter in setters.items():
        app.add_url_rule(f"/simulator/{name}", f"sim_{name}", _setter_view(setter), methods=["POST"])
    list_name, lister = listing
    app.add_url_rule(f"/simulator/{list_name}", f"sim_{list_name}",
                     lambda: jsonify(lister(request.args)), methods=["GET"])

    @app.post("/simulator/reset")
    def sim_reset():
        state.reset()
        return jsonify(ok=True)

    @app.post("/simulator/fire")
    def sim_fire():
        return jsonify(posted=state.fire_pending_now())


# Imported last: the submodules use the helpers above.
from .africastalking import ATSimState, create_at_sim  # noqa: E402
from .daraja import AMOUNT_OUTCOMES, OUTCOMES, DarajaSimState, create_daraja_sim  # noqa: E402
from .server import SimulatorServer, start_simulators  # noqa: E402
from .smtp_sink import MailSink, SmtpSink  # noqa: E402

__all__ = ["AMOUNT_OUTCOMES", "OUTCOMES", "ATSimState", "DarajaSimState", "MailSink", "SimulatorServer", "SmtpSink",
           "create_at_sim", "create_daraja_sim", "start_simulators"]

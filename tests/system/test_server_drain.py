"""The shipped server's drain (granian): SIGTERM lets requests finish, and an open long-poll is answered at
once rather than held for its whole wait, so a worker stops in moments, not after the long-poll's 25 s."""
from __future__ import annotations

import threading

import pytest
import requests

from tests.factories import add_staff

pytestmark = pytest.mark.server
WAIT_S = 25  # the longest wait the API allows a long-poll; the drain must not sit it out


def test_sigterm_answers_an_open_long_poll_at_once_and_the_gateway_exits_cleanly(live_process):
    passwords = add_staff()
    login = requests.post(f"{live_process.url}/api/v1/auth/login",
                          json={"username": "viewer", "password": passwords["viewer"]}, timeout=10)
    token = login.json()["token"]
    answer: dict = {}

    def long_poll() -> None:
        response = requests.get(f"{live_process.url}/api/v1/events", params={"after": "now", "wait": WAIT_S},
                                headers={"Authorization": f"Bearer {token}"}, timeout=WAIT_S + 10)
        answer.update(status=response.status_code, body=response.json())

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    poller.join(1.0)  # the long-poll is open on the gateway (it would answer only after WAIT_S)
    assert poller.is_alive()
    # stop() sends SIGTERM and waits at most 10 s before it kills: a drain that sat out the long-poll would
    # be killed (exit code -9) and the long-poll would fail instead of answering
    assert live_process.stop(timeout=10) == 0, live_process.log_tail(3000)
    poller.join(5)
    assert answer.get("status") == 200 and answer["body"]["items"] == [], answer

"""Long-polls capped per token and in all (issue 15): past the cap a 429 with Retry-After, never a held
thread; wait=0 and USSD hops answer at once meanwhile."""
from __future__ import annotations

import threading

import pytest

from gateway.http.longpoll import LongPollGate, TooManyLongPolls
from tests.conftest import QuietDispatcher
from tests.helpers import wait_for

URL = "/api/v1/events"


@pytest.fixture
def app(make_app):
    return make_app(dispatcher=QuietDispatcher(),
                    config_overrides={"api_rate_limits": False, "longpoll_per_principal": 2, "longpoll_total": 3})


def _hold(client, headers, count, answers):
    """count long-polls of 3 s on their own threads; each answer's status lands in answers."""
    def poll():
        answers.append(client.get(URL, query_string={"after": "now", "wait": 3}, headers=headers).status_code)

    threads = [threading.Thread(target=poll) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_past_the_cap_a_long_poll_is_429_while_wait_0_and_ussd_answer(app, client, as_):
    gate = app.extensions["lipa"].longpolls
    answers: list[int] = []
    threads = _hold(client, as_["viewer"], 2, answers)
    wait_for(lambda: gate.open == 2, timeout=5)

    refused = client.get(URL, query_string={"after": "now", "wait": 25}, headers=as_["viewer"])
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    assert refused.get_json()["error"]["code"] == "too_many_long_polls"
    at_once = client.get(URL, query_string={"after": "now", "wait": 0}, headers=as_["viewer"])
    assert at_once.status_code == 200 and at_once.get_json()["items"] == []
    hop = client.post("/ussd", data={"sessionId": "ATUid_cap_1", "serviceCode": "*384*123#",
                                     "phoneNumber": "+254712345678", "networkCode": "63902", "text": ""})
    assert hop.status_code == 200 and hop.get_data(as_text=True).startswith("CON ")

    threads += _hold(client, as_["admin"], 1, answers)  # another token: the third place in all
    wait_for(lambda: gate.open == 3, timeout=5)
    full = client.get(URL, query_string={"after": "now", "wait": 1}, headers=as_["admin"])
    assert full.status_code == 429 and "long-polls open" in full.get_json()["error"]["message"]

    for thread in threads:
        thread.join(10)
    assert answers == [200, 200, 200] and gate.open == 0  # every place given back
    assert client.get(URL, query_string={"after": "now", "wait": 0.1}, headers=as_["viewer"]).status_code == 200


def test_a_place_is_given_back_when_the_wait_fails():
    gate = LongPollGate(per_principal=1, total=5)
    with pytest.raises(RuntimeError), gate.slot("viewer:1"):
        raise RuntimeError("feed failed")
    with gate.slot("viewer:1"), pytest.raises(TooManyLongPolls):
        with gate.slot("viewer:1"):
            pass
    assert gate.open == 0

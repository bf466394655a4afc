"""Scale-out: several real gateway processes (`run_gateway.py serve`) on one database, each guarantee checked
across processes: USSD sessions and language, the shared Daraja token, exactly-once outbox claims, job leases
with take-over, and rate limits counted once for all. Runs on SQLite (one host, one WAL file: the
`--workers N` setup) and on PostgreSQL (CI runs both); every wait has a deadline."""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway.api.lockout import USERNAME
from shared.db import db, init_db
from shared.models import InboxMessage, JobRun, JobState, Notification, Payment, ProviderToken
from tests.helpers import wait_for
from tests.scale_support import (
    AT_SEND, OAUTH, STK_QUERY, GatewayProcess, Simulators, dial, fresh_database, pid_of, start_gateways, text_in,
)

pytestmark = pytest.mark.server
FINAL = ("SENT", "DELIVERED", "FAILED", "SUPPRESSED")
LOGIN_LIMIT = USERNAME.free + 1  # failed logins answered 401 before the username locks (gateway.api.lockout)
SMS_REPLY_LIMIT = 5  # gateway.sms.ratelimit.MAX_REPLIES


@pytest.fixture(scope="module")
def sims():
    server = Simulators()
    yield server
    server.stop()


def read(url: str, query):
    """Run query() against the gateways' database from the test process."""
    init_db(url)
    with db.connection_context():
        return query()


def reference_in(screen: str) -> str:
    return re.search(r"\bLP[0-9A-Z]{7}\b", screen).group(0)


def payment_status(url: str, reference: str) -> str | None:
    return read(url, lambda: Payment.get(Payment.reference == reference).status)


def outbox_settled(url: str) -> bool:
    """Nothing left to send: every notification row is in a final state."""
    return read(url, lambda: not Notification.select().where(Notification.status.not_in(FINAL)).exists())


def inbound_applied(url: str, at_ids: list[str]) -> bool:
    keys = [f"at.sms:{at_id}" for at_id in at_ids]
    return read(url, lambda: InboxMessage.select().where(InboxMessage.dedupe_key.in_(keys),
                                                         InboxMessage.status == "APPLIED").count() == len(keys))


def wait_past_window_edge(window_s: int, margin_s: float = 8.0) -> None:
    """Fixed windows reset at multiples of window_s: never count across a reset."""
    left = window_s - time.time() % window_s
    if left < margin_s:
        time.sleep(left + 0.1)


@pytest.fixture(scope="class")
def pair(sims, tmp_path_factory):
    """Two gateways on one fresh database, stopped when the class is done (the next test empties it)."""
    url = fresh_database(tmp_path_factory.mktemp("scale"))
    gateways = start_gateways(url, sims)
    yield url, gateways
    for gateway in gateways:
        gateway.cleanup()


class TestTwoProcesses:
    """Two `run_gateway.py --port P --no-simulators` processes on one database, driven alternately."""

    def test_a_ussd_session_alternating_between_processes_pays(self, pair, sims):
        url, (one, two) = pair
        phone = "+254711000001"
        assert dial(one.url, "lang", "", phone).startswith("CON")
        assert "Choose language" in dial(two.url, "lang", "4", phone)
        assert dial(one.url, "lang", "4*2", phone) == "END Lugha imebadilishwa kuwa Kiswahili."
        hops = [(two, ""), (one, "1"), (two, "1*12345"), (one, "1*12345*500")]
        screens = [dial(gateway.url, "pay", text, phone) for gateway, text in hops]
        assert screens[0].startswith("CON Lipa M-Pesa") and "1 Lipa" in screens[0]  # the language chosen on one
        assert screens[3].startswith("CON Lipa KES 500 kwa akaunti 12345?")
        end = dial(two.url, "pay", "1*12345*500*1", phone)
        assert end.startswith("END Subiri ombi la M-Pesa")
        # Africa's Talking repeats a hop it got no answer to; the other process answers it from the session
        assert dial(one.url, "pay", "1*12345*500*1", phone) == end
        reference = reference_in(end)
        wait_for(lambda: payment_status(url, reference) == "COMPLETED", timeout=15)
        pushes = [p for p in sims.daraja.requests_log() if p["phone"] == "254711000001"]
        assert len(pushes) == 1, pushes  # the repeated hop made no second payment or push
        assert read(url, lambda: Payment.select().where(Payment.account == "12345", Payment.amount == 500)
                    .count()) == 1
        assert dial(one.url, "status", "2", phone).startswith(f"END Malipo {reference}: Imelipwa")

    def test_the_daraja_token_is_fetched_once_for_all_processes(self, pair, sims):
        url, (one, two) = pair
        ends = []
        for index, gateway in enumerate((one, two, one, two)):
            ends.append(dial(gateway.url, f"tok{index}", "1*TOK*20*1", f"+25471100010{index}"))
        for end in ends:
            wait_for(lambda end=end: payment_status(url, reference_in(end)) == "COMPLETED", timeout=15)
        callback_ports = {p["callback_url"].split(":")[2].split("/")[0] for p in sims.daraja.requests_log()
                          if p["phone"].startswith("25471100010")}
        assert callback_ports == {str(one.port), str(two.port)}  # each process pushed some
        assert sims.hits[OAUTH] == 1
        assert read(url, lambda: ProviderToken.select().count()) == 1

    def test_when_daraja_refuses_the_token_both_processes_refresh_it_once(self, pair, sims):
        url, gateways = pair
        sims.daraja.revoke_tokens()  # both processes' next push is refused, at the same moment
        sims.delays[OAUTH] = 0.3  # a slow OAuth answer: without the fetch lock both would fetch
        before, barrier = sims.hits[OAUTH], threading.Barrier(2)

        def pay(index: int) -> str:
            barrier.wait()
            return dial(gateways[index].url, f"re{index}", "1*TOK*25*1", f"+25471100020{index}")
        try:
            with ThreadPoolExecutor(2) as pool:
                ends = list(pool.map(pay, range(2)))
            for end in ends:
                wait_for(lambda end=end: payment_status(url, reference_in(end)) == "COMPLETED", timeout=15)
        finally:
            sims.delays.pop(OAUTH)
        assert sims.hits[OAUTH] - before == 1

    def test_outbox_rows_are_sent_exactly_once_by_both_dispatchers(self, pair, sims):
        url, gateways = pair
        sims.delays[AT_SEND] = 0.02  # each send takes a while, so both dispatchers claim while the other sends
        phones = [f"+2547120{index:05d}" for index in range(30)]
        try:
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(lambda i: text_in(gateways[i % 2].url, phones[i], "HELP", f"out-{i}"), range(30)))
            wait_for(lambda: inbound_applied(url, [f"out-{i}" for i in range(30)]), timeout=20)
            wait_for(lambda: outbox_settled(url), timeout=20)
        finally:
            sims.delays.pop(AT_SEND)
        assert [len(sims.at.messages_for(phone)) for phone in phones] == [1] * 30
        rows = read(url, lambda: list(Notification.select().where(
            Notification.dedupe_key.in_([f"reply:out-{i}" for i in range(30)]))))
        assert len(rows) == 30 and {(r.status, r.attempts) for r in rows} == {("SENT", 1)}
        workers = {pid for gateway in gateways for pid in gateway.worker_pids()}
        claimers = {pid_of(r.claimed_by) for r in rows}
        assert claimers == workers, (claimers, workers)  # both processes' dispatchers took a share

    def test_the_api_rate_limit_counts_requests_to_every_process(self, pair):
        _, (one, two) = pair
        wait_past_window_edge(900)
        bad = {"username": "nobody", "password": "wrong-password"}
        answers = [requests.post(f"{(one, two)[i % 2].url}/api/v1/auth/login", json=bad, timeout=10)
                   for i in range(LOGIN_LIMIT + 2)]
        assert [a.status_code for a in answers] == [401] * LOGIN_LIMIT + [429, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].json()["error"]["code"] == "rate_limited"

    def test_the_sms_reply_limit_counts_replies_from_every_process(self, pair, sims):
        url, gateways = pair
        phone = "+254713000001"
        ids = [f"lim-{i}" for i in range(SMS_REPLY_LIMIT + 3)]
        with ThreadPoolExecutor(4) as pool:  # at the same time, half to each process
            list(pool.map(lambda i: text_in(gateways[i % 2].url, phone, "HELP", ids[i]), range(len(ids))))
        wait_for(lambda: inbound_applied(url, ids), timeout=20)
        wait_for(lambda: outbox_settled(url), timeout=20)
        assert len(sims.at.messages_for(phone)) == SMS_REPLY_LIMIT
        notes = read(url, lambda: sorted(m.note for m in InboxMessage.select().where(
            InboxMessage.dedupe_key.in_([f"at.sms:{i}" for i in ids]))))
        assert notes.count("rate limited") == len(ids) - SMS_REPLY_LIMIT


def expire_runs(url: str) -> list[JobRun]:
    return read(url, lambda: list(JobRun.select().where(JobRun.job == "expire-pending").order_by(JobRun.started_at)))


def assert_never_concurrent(runs: list[JobRun]) -> None:
    """Each run starts after the one before it finished (one clock: every process is on this host)."""
    for before, after in zip(runs, runs[1:], strict=False):
        assert before.finished_at is not None and after.started_at >= before.finished_at, (
            f"{before.worker} {before.started_at}..{before.finished_at} overlaps "
            f"{after.worker} from {after.started_at}")


def test_a_job_runs_on_one_process_at_a_time_and_moves_when_it_stops(sims, tmp_path):
    """expire-pending every second on both processes, each run slowed by two STK queries of 0.2 s that M-Pesa
    answers "still being processed": the runs never overlap, and when the process running them stops, the
    other one carries on."""
    url = fresh_database(tmp_path)
    env = {"LIPA_JOB_EXPIRE_PENDING_S": "1", "LIPA_STK_TIMEOUT_S": "1"}
    gateways = start_gateways(url, sims, env=env)
    sims.daraja.callback_delay, sims.delays[STK_QUERY] = 3600, 0.2  # no callback: PROCESSING stays
    try:
        refs = [reference_in(dial(g.url, f"slow{i}", "1*SLOW*30*1", f"+25471400000{i}"))
                for i, g in enumerate(gateways)]
        wait_for(lambda: all(payment_status(url, ref) == "PROCESSING" for ref in refs), timeout=15)

        def busy(after_id: int = 0, pids=None) -> list[JobRun]:
            """Runs that queried M-Pesa (so took a while), after a run id, by some processes."""
            return [r for r in expire_runs(url) if (r.counts or {}).get("queried") and r.id > after_id
                    and (pids is None or pid_of(r.worker) in pids)]
        wait_for(lambda: len(busy()) >= 4, timeout=25, interval=0.2)
        runs = expire_runs(url)
        assert_never_concurrent([r for r in runs if r.outcome != "RUNNING"])
        holder = next(g for g in gateways if pid_of(runs[-1].worker) in g.worker_pids())
        survivor = next(g for g in gateways if g is not holder)
        survivor_pids = survivor.worker_pids()
        assert holder.stop() == 0
        last_id = max(r.id for r in expire_runs(url))
        wait_for(lambda: len(busy(last_id, survivor_pids)) >= 2, timeout=15, interval=0.2)
        runs = [r for r in expire_runs(url) if r.outcome != "RUNNING"]
        assert_never_concurrent(runs)
        assert {r.outcome for r in runs} == {"OK"}
        lease = read(url, lambda: JobState.get(JobState.name == "expire-pending"))
        assert lease.lease_owner is None or pid_of(lease.lease_owner) in survivor.worker_pids()
    finally:
        sims.daraja.callback_delay = 0.05
        sims.delays.pop(STK_QUERY, None)
        for gateway in gateways:
            gateway.cleanup()


def test_workers_2_on_one_port_share_the_database(sims, tmp_path):
    """`run_gateway.py --workers 2`: gunicorn forks two workers on one port; the paid path, the receipt SMS
    (exactly once) and the rate limit hold whichever worker the kernel hands each request to."""
    url = fresh_database(tmp_path)
    gateway = GatewayProcess(url, sims, workers=2)
    try:
        gateway.wait_ready()
        assert len(gateway.worker_pids()) == 2
        phone = "+254715000001"
        for text in ("", "1", "1*W2", "1*W2*40"):
            assert dial(gateway.url, "w2", text, phone).startswith("CON")
        reference = reference_in(dial(gateway.url, "w2", "1*W2*40*1", phone))
        wait_for(lambda: payment_status(url, reference) == "COMPLETED", timeout=15)
        wait_for(lambda: sims.at.messages_for(phone) and outbox_settled(url), timeout=15)
        assert len(sims.at.messages_for(phone)) == 1
        wait_past_window_edge(900)
        bad = {"username": "nobody", "password": "wrong-password"}
        codes = [requests.post(f"{gateway.url}/api/v1/auth/login", json=bad, timeout=10).status_code
                 for _ in range(LOGIN_LIMIT + 1)]
        assert codes == [401] * LOGIN_LIMIT + [429]
    finally:
        assert gateway.stop() == 0, gateway.log_tail()
        gateway.cleanup()


@pytest.mark.parametrize("trusted, forwarded_for, status", [
    (1, "196.201.214.200", 200),  # nginx appended Safaricom's address: allowed
    (1, "196.201.214.200, 10.1.2.3", 404),  # the caller wrote the first entry itself; nginx saw 10.1.2.3
    (0, "196.201.214.200", 404),  # no proxy is trusted: the header is anyone's word, the peer is 127.0.0.1
])
def test_behind_a_proxy_the_allowlist_checks_the_forwarded_address(make_app, trusted, forwarded_for, status):
    """LIPA_TRUSTED_PROXIES=1 (ProxyFix): MPESA_ALLOWED_IPS and the rate limits see the address the proxy saw."""
    from tests.conftest import CALLBACK_TOKEN, fixture_json

    app = make_app(config_overrides={"trusted_proxies": trusted, "mpesa_allowed_ips": ("196.201.214.200",)})
    answer = app.test_client().post(f"/mpesa/stk/callback/{CALLBACK_TOKEN}", json=fixture_json(
        "stk_callback_paid.json"), headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"})
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert app.test_client().get("/metrics", headers={"X-Forwarded-For": forwarded_for}).status_code == 404

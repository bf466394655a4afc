"""The pay page in a real headless Chromium (issue 16), against a live gateway and the simulators: a customer
opens the link, types a phone, sees "Check your phone", then "Paid" with the receipt without reloading
(JavaScript polling); the same with JavaScript off (meta refresh); a failed attempt offers "Try again"; an
expired link says so with no Pay button; no state ever shows the payer's full number.
Every state is photographed; LIPA_UPDATE_SCREENSHOTS=1 writes them over docs/screenshots/paypage-*.png
(the README shows those), otherwise they go to a temporary folder so a test run leaves the tree clean.

Debian's chromium, driven by Playwright's own driver (never `playwright install`: executable_path). Skipped
when there is no chromium binary or no playwright."""
import os
import shutil
import time
from pathlib import Path

import pytest

from gateway.payments.requests import create_request, set_request_status
from shared.db import db, write_tx
from shared.models import Merchant, Payment, PaymentRequest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.server,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
PHONE = "254712345678"
FULL_NUMBERS = (PHONE, "0712345678", "+254712345678", "712345678", "0712 345 678")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def phone_page(browser, request):
    """A phone-sized page; ``javascript`` off when the test is parametrised so (Opera Mini)."""
    context = browser.new_context(viewport={"width": 360, "height": 640}, java_script_enabled=getattr(
        request, "param", True), locale="en-GB")
    yield context.new_page()
    context.close()


def bill(amount=1500, **kw):
    """A merchant's request as a customer would get its link."""
    with db.connection_context():
        merchant, _ = Merchant.get_or_create(name="Greenfield Academy")
        return create_request(amount=amount, account="ADM1042", description="School fees, term 2",
                              merchant=merchant, **kw)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return SHOTS if os.environ.get("LIPA_UPDATE_SCREENSHOTS") == "1" else tmp_path_factory.mktemp("shots")


@pytest.fixture
def shot(shots):
    def take(page, name):
        page.screenshot(path=str(shots / f"paypage-{name}.png"))
    return take


def no_full_number(page):
    html = page.content()
    for number in FULL_NUMBERS:
        assert number not in html, f"{number} shown on the page"


def pay_from(page, live, code, phone="0712 345 678"):
    page.goto(f"{live.url}/pay/{code}")
    page.fill("#phone", phone)
    page.click("#payform button")
    page.wait_for_selector("#result.waiting")


def fire_when_waiting(sim, live):
    """The customer enters the PIN: the simulator's callback is posted now (its own timer waits 30 s)."""
    deadline = time.monotonic() + 10
    while not sim.daraja.requests_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.daraja.fire_pending_now() == 1
    live.app.extensions["lipa"].tasks.drain()


@pytest.fixture
def held(sim):
    """The phone answers late (30 s), so the page is seen waiting until the test fires the callback."""
    sim.daraja.set_outcome(PHONE, "late")
    return sim


def test_paid_live_without_reloading(live, held, phone_page, shot):
    req = bill()
    page = phone_page
    page.goto(f"{live.url}/pay/{req.code}")
    assert page.locator("h1").inner_text() == "Pay with M-Pesa"
    assert "Greenfield Academy" in page.content() and "KES 1,500" in page.inner_text("dl")
    shot(page, "open")
    pay_from(page, live, req.code)
    assert page.inner_text("#result") == "Check your phone for the M-Pesa prompt"
    assert "254712***678" in page.inner_text("#attempt") and page.locator("#payform").is_hidden()
    assert "This page updates by itself" in page.inner_text("#live")  # so nobody reloads or leaves
    no_full_number(page)
    shot(page, "waiting")
    page.evaluate("window.notReloaded = true")  # lost if the page reloads
    fire_when_waiting(held, live)
    page.wait_for_selector("#result.paid", timeout=15_000)
    with db.connection_context():
        receipt = Payment.get(Payment.request == req.id).mpesa_receipt
    assert page.inner_text("#result") == f"Paid — M-Pesa receipt {receipt}" and receipt
    assert page.evaluate("window.notReloaded") is True and page.inner_text("#status") == "Paid."
    assert page.locator("#live").is_hidden()
    no_full_number(page)
    shot(page, "paid")


@pytest.mark.parametrize("phone_page", [False], indirect=True)
def test_paid_without_javascript_through_the_meta_refresh(live, held, phone_page, shot):
    req = bill()
    page = phone_page
    pay_from(page, live, req.code)
    assert page.locator("noscript").count() == 1 and "Check your phone" in page.inner_text("#result")
    no_full_number(page)
    fire_when_waiting(held, live)
    page.wait_for_selector("#result.paid", timeout=15_000)  # the page refreshed itself
    assert page.inner_text("#result").startswith("Paid — M-Pesa receipt ") and page.locator("#payform").is_hidden()
    no_full_number(page)
    shot(page, "paid-nojs")


def test_a_failed_attempt_says_why_and_offers_try_again(live, sim, phone_page, shot):
    sim.daraja.set_outcome(PHONE, "insufficient")
    # A second, like a customer reading the prompt: the quick simulator's 0.05 s could beat the commit of the
    # push's CheckoutRequestID, and with no scheduler here nothing would heal that callback.
    sim.daraja.callback_delay = 1.0
    req = bill()
    page = phone_page
    page.goto(f"{live.url}/pay/{req.code}")
    page.fill("#phone", "+254712345678")
    page.click("#payform button")
    page.wait_for_selector("#result.failed", timeout=15_000)
    assert "did not go through" in page.inner_text("#result")
    assert page.locator("#payform button").inner_text() == "Try again" and page.locator("#payform").is_visible()
    no_full_number(page)
    shot(page, "failed")


def test_an_expired_link_says_so_with_no_pay_button(live, phone_page, shot):
    req = bill()
    with db.connection_context(), write_tx():
        set_request_status(PaymentRequest.get_by_id(req.id), "EXPIRED")
    page = phone_page
    page.goto(f"{live.url}/pay/{req.code}")
    assert page.inner_text("#status") == "This payment link has expired."
    assert page.inner_text(".closed") == "Ask Greenfield Academy for a new payment link."
    assert page.locator("#payform").is_hidden() and not page.get_by_role("button", name="Pay").is_visible()
    shot(page, "expired")


def test_kiswahili_by_the_switch(live, phone_page, shot):
    req = bill()
    page = phone_page
    page.goto(f"{live.url}/pay/{req.code}")
    page.click("text=Kiswahili")
    assert page.locator("h1").inner_text() == "Lipa kwa M-Pesa"
    assert page.locator("#payform button").inner_text() == "Lipa"
    shot(page, "kiswahili")

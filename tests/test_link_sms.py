"""The link SMS (issue 16): a request opened for a phone sends it one SMS, one GSM-7 segment, en or sw,
with the amount, the merchant, the link and the dial string; once per request, never without a phone."""
import pytest

from gateway.notify import links, preferences
from gateway.payments.requests import create_request
from gateway.texts.links import MERCHANT_MAX, TEMPLATES, render_link
from shared.gsm import gsm7_length, is_gsm7
from shared.models import Notification, PaymentRequest
from tests.helpers import staff_headers

URL = "/api/v1/payment-requests"
BILL = {"amount": 1500, "description": "School fees term 2", "account": "adm1042", "phone": "0712345678"}
PHONE = "254712345678"
LONG_URL = "https://pay.lipa-payments.example.co.ke/pay/999999"
LONG_DIAL = "*384*12345*999999#"


@pytest.fixture
def heads(conn):
    return staff_headers(roles=["operator"], merchants={"School": "Greenfield Academy"})


def link_sms():
    return list(Notification.select().where(Notification.kind == links.KIND))


def test_a_request_for_a_phone_queues_one_sms_with_link_and_dial_string(client, heads):
    made = client.post(URL, headers={**heads["School"], "Idempotency-Key": "t2"}, json=BILL).get_json()
    again = client.post(URL, headers={**heads["School"], "Idempotency-Key": "t2"}, json=BILL)
    assert again.status_code == 201 and again.get_json()["id"] == made["id"]
    (sms,) = link_sms()
    assert (sms.channel, sms.recipient, sms.language, sms.request_id) == ("sms", PHONE, "en", made["id"])
    assert sms.dedupe_key == f"sms:request:{made['id']}:link"
    for part in ("KES 1,500", "Greenfield Academy", made["pay_url"], made["ussd_string"]):
        assert part in sms.body, (part, sms.body)
    assert is_gsm7(sms.body) and gsm7_length(sms.body) <= 160


def test_queueing_twice_still_sends_once(conn):
    req = create_request(amount=100, account="INV1", phone="0712345678", ussd_code="*384*123#")
    links.queue_link_sms(req, url="http://x/pay/1", dial="*384*123*1#")
    assert len(link_sms()) == 1


def test_no_phone_no_sms(client, heads):
    body = {k: v for k, v in BILL.items() if k != "phone"}
    assert client.post(URL, headers=heads["School"], json=body).status_code == 201
    assert link_sms() == []


def test_the_phones_language_is_used(client, heads):
    preferences.set_language(PHONE, "sw")
    made = client.post(URL, headers=heads["operator"], json=BILL).get_json()
    (sms,) = link_sms()
    assert sms.language == "sw" and sms.body.startswith("Lipa: Lipa KES 1,500 kwa ADM1042. Fungua ")
    assert made["pay_url"] in sms.body and made["ussd_string"] in sms.body


def test_a_failing_sms_never_fails_the_request(client, heads, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("template bug")

    monkeypatch.setattr(links, "render_link", broken)
    response = client.post(URL, headers=heads["School"], json=BILL)
    assert response.status_code == 201 and PaymentRequest.get_by_id(response.get_json()["id"]).phone == PHONE
    assert link_sms() == []


@pytest.mark.parametrize("lang", list(TEMPLATES))
@pytest.mark.parametrize("amount", [250_000, None])
def test_fits_one_segment_at_the_longest_and_cuts_the_merchant(lang, amount):
    text = render_link(lang, amount=amount, merchant="W" * 100, url=LONG_URL, dial=LONG_DIAL)
    assert is_gsm7(text) and gsm7_length(text) <= 160, (len(text), text)
    assert LONG_URL in text and LONG_DIAL in text
    assert "W" * MERCHANT_MAX in text and "W" * (MERCHANT_MAX + 1) not in text


@pytest.mark.parametrize("lang", list(TEMPLATES))
def test_a_link_too_long_for_the_sms_leaves_the_dial_string(lang):
    url = "https://" + "p" * 140 + "/pay/999999"
    text = render_link(lang, amount=250_000, merchant="Zoë's Café ☕" * 5, url=url, dial=LONG_DIAL)
    assert is_gsm7(text) and gsm7_length(text) <= 160 and LONG_DIAL in text and "https" not in text


def test_without_a_public_url_the_sms_names_the_dial_string():
    text = render_link("en", amount=1500, merchant="Greenfield", url="", dial="*384*123*482913#")
    assert text == "Lipa: Pay KES 1,500 to Greenfield. Dial *384*123*482913# to pay with M-Pesa."

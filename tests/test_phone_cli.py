"""The terminal feature phone drives a live gateway over HTTP and reads its SMS inbox."""
import pytest

from gateway.devtools.phone_cli import FeaturePhone
from shared.db import db
from shared.errors import InvalidInput
from shared.models import Payment
from tests.helpers import wait_for


def scripted(lines):
    answers = iter(lines)

    def ask(prompt):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None
    return ask


@pytest.mark.server
def test_dial_pay_then_read_the_receipt(live, sim):
    out = []
    services = live.app.extensions["lipa"]
    services.dispatcher.start()
    try:
        phone = FeaturePhone("0712345678", gateway_url=live.url, at_sim_url=sim.at_url,
                             ask=scripted(["dial", "1", "SHOP1", "300", "1", "sms help", "inbox", "bogus", "quit"]),
                             say=out.append)
        assert phone.run() == 0

        def paid():
            with db.connection_context():
                return Payment.get().status == "COMPLETED"
        wait_for(paid)
        wait_for(lambda: len(sim.at.messages_for("254712345678")) >= 2)
        phone.ask = scripted(["inbox"])
        phone.run()
    finally:
        services.dispatcher.stop()
    text = "\n".join(out)
    assert "1 Pay" in text and "Wait for the M-Pesa prompt" in text and "Sent." in text
    assert "Paid KES 300 to SHOP1" in text and "Commands:" in text


def test_invalid_number_is_refused():
    with pytest.raises(InvalidInput):
        FeaturePhone("12", gateway_url="http://127.0.0.1:9", at_sim_url=None)

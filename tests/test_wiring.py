"""What create_app wires is held on its Services: two apps in one process never see each other's listeners."""
from gateway.payments.transitions import TransitionHooks
from tests.factories import make_payment, paid_body, post, reload


def _spy(app, seen: list, label: str) -> None:
    app.extensions["lipa"].hooks.add(
        "spy", lambda payment, old, new, event: seen.append((label, payment.reference, new)))


def test_two_apps_run_only_their_own_listeners(make_app, sim, conn):
    urls = {"mpesa_base_url": sim.daraja_url, "at_base_url": sim.at_url}
    first = make_app(config_overrides={**urls, "flag_amount_over": 100})
    second = make_app(config_overrides={**urls, "flag_amount_over": 1_000_000})
    seen: list = []
    _spy(first, seen, "first")
    _spy(second, seen, "second")
    one = make_payment(ref="LPWIRE001", checkout="ws_CO_wire1")
    two = make_payment(ref="LPWIRE002", checkout="ws_CO_wire2", phone="254700000002")

    post(first.test_client(), first, paid_body(checkout="ws_CO_wire1", receipt="WIRE000001"))
    post(second.test_client(), second, paid_body(checkout="ws_CO_wire2", receipt="WIRE000002", phone=254700000002))

    assert seen == [("first", "LPWIRE001", "COMPLETED"), ("second", "LPWIRE002", "COMPLETED")]
    # each app's flag rule ran with its own config: 500 is over the first one's limit only
    assert reload(one).flagged and not reload(two).flagged


def test_hooks_are_the_apps_own_objects(make_app):
    first, second = make_app(), make_app()
    hooks = [app.extensions["lipa"].hooks for app in (first, second)]
    assert all(isinstance(h, TransitionHooks) for h in hooks) and hooks[0] is not hooks[1]
    assert set(hooks[0].listeners) == {"requests", "email", "flags", "notify"}
    assert hooks[0].listeners["flags"] is not hooks[1].listeners["flags"]


class CountingDispatcher:
    """Counts wake-ups; sends nothing."""

    def __init__(self):
        self.woken = 0

    def wake(self):
        self.woken += 1

    def start(self):
        pass

    def stop(self, timeout=5):
        pass


def test_a_message_queued_for_one_app_wakes_only_its_dispatcher(make_app):
    from gateway.notify import outbox
    from shared.db import db, write_tx

    first, second = make_app(dispatcher=CountingDispatcher()), make_app(dispatcher=CountingDispatcher())
    one, two = first.extensions["lipa"], second.extensions["lipa"]
    assert one.wakeups is not two.wakeups
    one.bind()  # as a request, task or job of the first app does
    with db.connection_context(), write_tx():
        outbox.enqueue(channel="sms", kind="test", recipient="254700000001", body="hello", dedupe_key="wire:1")

    two.wake_dispatcher()
    one.wake_dispatcher()
    one.wake_dispatcher()  # taken once: a second call finds nothing new
    assert (one.dispatcher.woken, two.dispatcher.woken) == (1, 0)


def test_two_apps_on_two_databases_keep_their_own_personal_data_keys(make_app, tmp_path):
    """The keys are held on the database they belong to, not in a module global: the models are declared
    against one proxy per process, so an app built later binds its database, and its keys come with it;
    binding the first database again brings the first app's keys back."""
    import pytest
    from cryptography.fernet import Fernet

    from shared.db import db
    from shared.models import Payment
    from shared.privacy import crypto

    make_app()
    first_db = db.obj
    other = {"database_url": f"sqlite:///{tmp_path}/other.db", "data_keys": (Fernet.generate_key().decode(),),
             "lookup_key": "another-look-up-key-of-forty-characters!"}
    try:
        make_app(config_overrides=other)
        second_db = db.obj
        assert second_db is not first_db and not hasattr(crypto, "_keyring")
        one, two = crypto.keys_of(first_db), crypto.keys_of(second_db)
        assert crypto.keyring() is two and one.lookup_hash("254712345678") != two.lookup_hash("254712345678")
        with db.connection_context():
            make_payment(ref="LPKEYS002", phone="254712345678")
            token = db.execute_sql("SELECT phone FROM payment WHERE reference = 'LPKEYS002'").fetchone()[0]
            assert Payment.get(Payment.phone_hash == "254712345678").reference == "LPKEYS002"
        assert two.unseal(token) == "254712345678"
        with pytest.raises(crypto.Unreadable):
            one.unseal(token)  # the first app's keys open none of the second database's data
    finally:
        db.initialize(first_db)
    assert crypto.keyring() is one  # the first database bound again: its own keys with it

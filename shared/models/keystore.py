"""The personal-data keys of a configuration, installed on its database (see shared.privacy.crypto).

Why here and not in crypto: in the local profile a missing key is generated once and kept in the database's
Setting table so the demo runs with no setup. Anyone holding that database holds its keys, so this is never
done in sandbox or production. Reading the Setting table is a models concern; keeping it out of the pure
crypto module is what lets the sealed fields import crypto without an import cycle."""
from __future__ import annotations

from ..db import db, init_db, schema_tx
from ..privacy.crypto import Keyring, KeysNotSet, new_data_key, new_lookup_key, use_keys
from .operations import Setting

LOCAL_DATA_KEY = "local.data_key"
LOCAL_LOOKUP_KEY = "local.lookup_key"


def install_keys(config) -> Keyring:
    """The keys of ``config``, held on config's database (bound here if it is not already: init_db is a
    no-op for the bound URL); in the local profile a missing key comes from (or is created in) that
    database's Setting table. Call before migrate(): migration 9 seals existing rows."""
    init_db(config.database_url)
    data_keys, lookup_key = tuple(config.data_keys), config.lookup_key
    if not (data_keys and lookup_key):
        if not config.is_local:  # load_config refuses this already; kept as a guard for hand-made configs
            raise KeysNotSet("LIPA_DATA_KEY and LIPA_LOOKUP_KEY are required outside the local profile")
        stored = _local_keys()
        data_keys = data_keys or (stored[LOCAL_DATA_KEY],)
        lookup_key = lookup_key or stored[LOCAL_LOOKUP_KEY]
    return use_keys(data_keys, lookup_key)


def _local_keys() -> dict[str, str]:
    """Demo keys kept with the data (local profile only): created once, the same for every process."""
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        with schema_tx():
            Setting.create_table(safe=True)  # migration 1 creates it too (safe=True): a fresh database has none yet
            for key, make in ((LOCAL_DATA_KEY, new_data_key), (LOCAL_LOOKUP_KEY, new_lookup_key)):
                Setting.insert(key=key, value=make()).on_conflict_ignore().execute()
            rows = Setting.select().where(Setting.key.in_([LOCAL_DATA_KEY, LOCAL_LOOKUP_KEY]))
            return {row.key: row.value for row in rows}
    finally:
        if opened:
            db.close()

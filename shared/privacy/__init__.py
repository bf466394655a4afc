"""Personal data: crypto (Fernet, keyed hashes, the keys held on the database they belong to) and the sealed
fields; the keys are installed and rotated by shared.models (keystore, rekey), which read the database."""

"""Personal data: pure crypto (Fernet, keyed hashes) and the sealed fields; the keys are installed and rotated by shared.models (keystore, rekey), which read the database."""

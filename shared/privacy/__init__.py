"""Personal data: pure crypto (Fernet, keyed hashes), sealed fields, key rotation; keys installed by keyring."""

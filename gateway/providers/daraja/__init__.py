"""The Daraja client: OAuth token store, typed errors, result codes, callback URLs, C2B registration."""

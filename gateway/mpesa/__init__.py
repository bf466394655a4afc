"""M-Pesa Daraja: the HTTP client, callbacks and their blueprint."""

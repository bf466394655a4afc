"""Outbound clients of the providers: Daraja, Africa's Talking (SMS) and the merchant webhook sender."""

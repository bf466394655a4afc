"""Payments: the only module that changes a payment's status, and only through the state machine."""

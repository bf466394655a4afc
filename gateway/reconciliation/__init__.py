"""Reconciliation: an M-Pesa statement export read (statement), matched to payments (matcher), recorded (service)."""

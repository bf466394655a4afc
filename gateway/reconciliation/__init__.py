"""Reconciliation: an M-Pesa statement export read (statement), matched to payments (matcher), recorded (service).

Settling in bulk and the raw-row SQL are in bulk, the reconcile job's re-matching in rematch, shared names in common.
"""

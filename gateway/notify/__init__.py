"""Notifications: the outbox written with each status change, and the dispatcher that sends it."""

"""Inbox-first ingest: raw provider messages stored before the answer, healing, background tasks."""

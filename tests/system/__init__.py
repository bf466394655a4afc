"""Tests that start real servers (gateway processes, gunicorn, the desktop app against them): marked server."""

"""Scheduled jobs: plain functions (sweeps, registry), one runner that leases and records each run,
and a scheduler that only wires them to interval triggers."""
from .runner import job_stats, pause, resume, run_job

__all__ = ["job_stats", "pause", "resume", "run_job"]

"""The scheduled jobs by name: each takes the gateway's services (config, daraja, dispatcher,
stk_callback_url) and returns what it did as a small counts dict, so a run can be recorded."""
from __future__ import annotations

from shared.errors import NotFound

from . import sweeps

# A stored message still RECEIVED this long (or one process-inbox interval, if shorter) lost its applier:
# appliers lock and re-check the row, so healing one still in flight is harmless, only wasted work.
HEAL_AFTER_S = 30.0
# Seconds between runs; LIPA_JOB_<NAME>_S (config.job_intervals) overrides each one.
DEFAULT_INTERVALS = {
    "expire-pending": 30,
    "stuck-payments": 300,
    "expire-requests": 60,
    "dispatch-notifications": 30,
    "process-inbox": 60,
    "reconcile": 3600,
    "retention": 86400,
    "settlement-summary": 300,  # sends at LIPA_SETTLEMENT_HOUR; the interval is only how soon after it
}


def expire_pending(ctx) -> dict:
    """Query M-Pesa about payments whose callback never came."""
    return sweeps.expire_pending(daraja=ctx.daraja, config=ctx.config)


def stuck_payments(ctx) -> dict:
    """Alert staff once about payments that stay unfinished too long."""
    return sweeps.stuck_payments(config=ctx.config)


def expire_requests(ctx) -> dict:
    """Close payment requests past their expiry (the merchant's webhook is queued)."""
    return sweeps.expire_requests()


def dispatch_notifications(ctx) -> dict:
    """The recovery path of the outbox, for when the dispatcher thread was not woken or not running."""
    if ctx.dispatcher is None:
        return {"skipped": "no dispatcher"}
    recovery = getattr(ctx.dispatcher, "recovery_pass", None)  # a test's fake may have only dispatch_once
    return recovery() if recovery else {"handled": ctx.dispatcher.dispatch_once()}


def process_inbox(ctx) -> dict:
    """Apply provider messages stored but never applied (a crash between storing and applying), and send
    refunds that were requested inside another transaction (automatic refunds) but never sent, and
    Transaction Status checks Daraja never acknowledged."""
    from ..payments.verification import send_unsent_verifications
    from ..refunds.service import send_unsent_refunds
    from .healing import process_inbox as heal

    applied = heal(daraja=ctx.daraja, callback_url=ctx.stk_callback_url,
                   older_than_s=min(HEAL_AFTER_S, interval("process-inbox", ctx.config)))
    return {"applied": applied, "refunds_sent": send_unsent_refunds(ctx),
            "verifications_sent": send_unsent_verifications(ctx)}


def reconcile(ctx) -> dict:
    """Resume background statement imports whose process died, then re-match open reconciliation
    exceptions against the statements imported since."""
    from ..reconciliation import background, service

    resumed = background.resume_abandoned(config=getattr(ctx, "config", None))
    result = service.rematch_open()
    return {**(result if isinstance(result, dict) else {"matched": result}), "imports_resumed": resumed}


def retention(ctx) -> dict:
    """Trim working data (sessions, applied inbox rows, old job runs); history is kept."""
    return sweeps.retention(config=ctx.config)


def settlement_summary(ctx) -> dict:
    """E-mail each merchant that asked for it (create-api-key --email) yesterday's settlement figures."""
    from .settlement import send_summaries

    return send_summaries(config=ctx.config)


JOBS = {
    "expire-pending": expire_pending,
    "stuck-payments": stuck_payments,
    "expire-requests": expire_requests,
    "dispatch-notifications": dispatch_notifications,
    "process-inbox": process_inbox,
    "reconcile": reconcile,
    "retention": retention,
    "settlement-summary": settlement_summary,
}


def names() -> tuple[str, ...]:
    """Every job name, in the documented order."""
    return tuple(JOBS)


def get(name: str):
    """The job function; an unknown name is NotFound (the API answers 404)."""
    try:
        return JOBS[name]
    except KeyError:
        raise NotFound(f"No job called {name!r}.", code="unknown_job") from None


def interval(name: str, config=None) -> float:
    """Seconds between runs: the configured override, else the default."""
    overrides = getattr(config, "job_intervals", None) or {}
    return overrides.get(name) or DEFAULT_INTERVALS.get(name, 60)

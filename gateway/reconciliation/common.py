"""What the reconciliation modules share: the actor, the match and exception kinds, two small helpers.

A module of its own so that service (the import), bulk (settling many at once) and rematch (the job) can all
use these without importing one another in a circle: service imports bulk and rematch, never the reverse.
"""
from __future__ import annotations

from shared.db import for_update
from shared.errors import NotAllowed, NotFound
from shared.models import AuditLog, ReconException
from shared.states import PaymentStatus
from shared.timeutil import utcnow

ACTOR = "reconciliation"
S = PaymentStatus
RECEIPT, FUZZY, UNMATCHED = "RECEIPT", "FUZZY", "UNMATCHED"
MISSING_IN_LIPA, MISSING_IN_STATEMENT, AMOUNT_MISMATCH, DUPLICATE, UNPAID_IN_LIPA = (
    "missing_in_lipa", "missing_in_statement", "amount_mismatch", "duplicate", "unpaid_in_lipa")
LOADED = [s.value for s in (S.PENDING, S.PROCESSING, S.EXPIRED, S.FAILED, S.COMPLETED)]


def open_exception(exc_id: int) -> ReconException:
    """An exception still OPEN, locked, inside the caller's write transaction: 404 when there is none, refused
    when staff resolved it already (resolving and confirming both start here)."""
    row = for_update(ReconException.select().where(ReconException.id == exc_id)).get_or_none()
    if row is None:
        raise NotFound("No such reconciliation exception.")
    if row.status != "OPEN":
        raise NotAllowed(f"Exception {exc_id} was already resolved by {row.resolved_by}.", code="already_resolved")
    return row


def _resolve(row: ReconException, actor: str, note: str) -> None:
    """RESOLVED with who, when and why, and an AuditLog row; the caller holds the transaction."""
    row.status, row.resolved_by, row.resolution_note = "RESOLVED", actor[:64], note[:500]
    row.resolved_at = row.updated_at = utcnow()
    row.save()
    AuditLog.create(actor=actor[:64], action="recon_resolve", target_type="recon_exception",
                    target_id=str(row.id), reason=note[:500],
                    details={"kind": row.kind, "payment_id": row.payment_id, "line_id": row.line_id})

"""Four eyes: a manual money change above LIPA_FOUR_EYES_OVER shillings waits for a second admin.

The admin who asks gets an Approval (pending); a *different* admin approves it (it is then carried
out exactly as the first admin asked, under their name, the approver recorded) or rejects it. Both
the request and the decision leave audit rows. No Flask here: ``services`` is the app's service
bundle (daraja, config, tasks, public_url, callback_token).
"""
from __future__ import annotations

from shared.db import for_update, write_tx
from shared.errors import InvalidInput, LipaError, NotAllowed, NotFound
from shared.models import Approval, AuditLog, Payment
from shared.timeutil import utcnow

from ..payments import resolution, verification
from ..refunds import service as refunds

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
DECISIONS = {"approve": APPROVED, "reject": REJECTED}


class SameAdmin(LipaError):
    http_status = 403
    code = "same_admin"


def over_limit(config, amount: int) -> bool:
    return amount > config.four_eyes_over


def approval_json(a: Approval) -> dict:
    return {"id": a.id, "action": a.action, "payment_id": a.payment_id, "amount": a.amount, "params": a.params,
            "reason": a.reason, "requested_by": a.requested_by, "state": a.state, "decided_by": a.decided_by,
            "decision_reason": a.decision_reason, "outcome": a.outcome,
            "created_at": a.created_at.isoformat() + "Z" if a.created_at else None}


def request_approval(*, action: str, payment: Payment, amount: int, params: dict, reason: str,
                     requested_by: str) -> Approval:
    """Park a money change for a second admin."""
    with write_tx():
        approval = Approval.create(action=action, payment=payment, amount=amount, params=params,
                                   reason=reason[:255], requested_by=requested_by)
        AuditLog.create(actor=requested_by, action="approval_requested", target_type="payment",
                        target_id=str(payment.id), reason=reason[:500],
                        details={"approval_id": approval.id, "action": action, "amount": amount, **params})
    return approval


def pending() -> list[Approval]:
    return list(Approval.select().where(Approval.state == PENDING).order_by(Approval.id))


def decide(approval_id: int, *, decision, reason: str, actor: str, services) -> Approval:
    """Approve (carry it out) or reject; the admin who asked may do neither."""
    if decision not in DECISIONS:
        raise InvalidInput("decision must be approve or reject.", code="invalid_decision")
    approval = _claim(approval_id, actor)
    if decision == "approve":
        try:
            outcome = _carry_out(approval, services)
        except LipaError:
            _set(approval_id, state=PENDING, decided_by=None)  # nothing was done: still for review
            raise
    else:
        outcome = None
    return _set(approval_id, state=DECISIONS[decision], decided_by=actor, decision_reason=reason[:255],
                outcome=outcome, audit=(actor, f"approval_{DECISIONS[decision]}", reason))


def _claim(approval_id: int, actor: str) -> Approval:
    """Take a pending approval for deciding, so two admins cannot both carry it out."""
    with write_tx():
        approval = for_update(Approval.select().where(Approval.id == approval_id)).first()
        if approval is None:
            raise NotFound(f"There is no approval {approval_id}.")
        if approval.state != PENDING:
            raise NotAllowed(f"Approval {approval_id} is already {approval.state}.", code="approval_closed")
        if approval.requested_by == actor:
            raise SameAdmin("The admin who asked for this change cannot approve or reject it; "
                            "another admin must decide.")
        approval.state, approval.decided_by, approval.updated_at = "deciding", actor, utcnow()
        approval.save()
    return approval


def _set(approval_id: int, *, audit=None, **fields) -> Approval:
    with write_tx():
        approval = Approval.get_by_id(approval_id)
        for name, value in fields.items():
            setattr(approval, name, value)
        approval.updated_at = utcnow()
        approval.save()
        if audit:
            actor, action, reason = audit
            AuditLog.create(actor=actor, action=action, target_type="payment", target_id=str(approval.payment_id),
                            reason=reason[:500], details={"approval_id": approval.id, "action": approval.action,
                                                          "requested_by": approval.requested_by,
                                                          "outcome": approval.outcome})
    return approval


def _carry_out(approval: Approval, services) -> dict:
    """Do what the first admin asked, under their name; answers what it produced."""
    params, who = approval.params, approval.requested_by
    reason = f"{approval.reason} (approved by {approval.decided_by})"[:255]
    if approval.action == "resolve":
        kind, result = resolution.resolve(approval.payment_id, status=params["status"], reason=reason,
                                          receipt=params.get("receipt"), actor=who)
        if kind == "verification":
            verification.submit_verification(services, result.id)
            return {"verification_id": result.id}
        return {"status": result.status}
    payment = Payment.get_by_id(approval.payment_id)
    refund = refunds.request_refund(payment, params["amount"], reason, requested_by=who, method=params.get("method"))
    services.tasks.submit(refunds.send_refund, refund.id, daraja=services.daraja, config=services.config,
                          **verification.result_urls(services))
    return {"refund_id": refund.id}

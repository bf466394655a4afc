"""Ending access: logout, password change, deactivating staff, revoking merchant keys. Flask-free.

Every check in ``auth.authenticate`` reads the database on each request, so deleting a token, clearing
``Staff.active`` or setting ``ApiKey.revoked`` takes effect on the caller's next request. Each change is
written to the audit log.
"""
from __future__ import annotations

from shared.db import write_tx
from shared.errors import InvalidInput, NotFound
from shared.models import ApiKey, AuditLog, Merchant, Staff, StaffToken

from .auth import Forbidden, Principal, Unauthorized, hash_password, verify_credentials
from .passwords import check_password_rule


def logout(who: Principal) -> None:
    """The caller's own token stops working (a merchant key is revoked with revoke-api-key instead)."""
    _staff_only(who)
    with write_tx():
        StaffToken.delete().where(StaffToken.id == who.session).execute()
        _audit(who.actor, "logout", "staff", who.id)


def change_password(who: Principal, current: str, new: str) -> int:
    """Check the current password, set the new one, end the member's other sessions; how many ended.
    A wrong current password is a 403 (not a 401: the session itself is fine)."""
    _staff_only(who)
    try:
        staff = verify_credentials(who.name, current)
    except Unauthorized:
        raise Forbidden("The current password is wrong.", code="wrong_password") from None
    if new == current:
        raise InvalidInput("the new password must differ from the current one", code="weak_password")
    check_password_rule(new, staff.username)
    with write_tx():
        Staff.update(password_hash=hash_password(new)).where(Staff.id == staff.id).execute()
        ended = StaffToken.delete().where(StaffToken.staff == staff.id, StaffToken.id != who.session).execute()
        _audit(who.actor, "change_password", "staff", staff.id, details={"sessions_ended": ended})
    return ended


def deactivate_staff(username: str, *, actor: str = "cli") -> int:
    """The member can no longer log in, and every session of theirs ends; how many sessions ended."""
    staff = Staff.get_or_none(Staff.username == username)
    if staff is None:
        raise NotFound(f"There is no staff member {username!r}.")
    with write_tx():
        Staff.update(active=False).where(Staff.id == staff.id).execute()
        ended = StaffToken.delete().where(StaffToken.staff == staff.id).execute()
        _audit(actor, "deactivate_staff", "staff", staff.id, details={"username": username, "sessions_ended": ended})
    return ended


def revoke_api_keys(merchant_name: str, *, actor: str = "cli") -> int:
    """Every live key of the merchant stops working; how many were revoked."""
    merchant = Merchant.get_or_none(Merchant.name == merchant_name.strip())
    if merchant is None:
        raise NotFound(f"There is no merchant {merchant_name!r}.")
    with write_tx():
        revoked = (ApiKey.update(revoked=True)
                   .where(ApiKey.merchant == merchant.id, ApiKey.revoked == False)  # noqa: E712
                   .execute())
        _audit(actor, "revoke_api_key", "merchant", merchant.id, details={"name": merchant.name, "revoked": revoked})
    return revoked


def _staff_only(who: Principal) -> None:
    if who.kind != "staff":
        raise Forbidden("Only a staff session can be ended or change its password.")


def _audit(actor: str, action: str, target_type: str, target_id, details=None) -> None:
    AuditLog.create(actor=actor[:64], action=action, target_type=target_type, target_id=str(target_id),
                    details=details)

"""GET/POST /pay/<code> and GET /pay/<code>/status: the public pay page of a payment request.

Who may call it: anyone holding the link (it is meant to be shared by SMS or chat). So it shows no personal
data (the payer's phone only masked, never in full), its form is CSRF-safe (a double-submit token in a
SameSite=Strict cookie and a hidden field), every answer carries strict security headers (a CSP without
inline scripts, no referrer, no framing), and the status JSON is rate-limited per client address.
Works without JavaScript: after the POST the page refreshes itself (a meta refresh inside <noscript>)
until the attempt is decided; with JavaScript, static/pay.js polls the status JSON instead."""
from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, abort, current_app, jsonify, make_response, redirect, render_template, request, url_for

from shared.errors import LipaError
from shared.phone import mask_phone
from shared.timeutil import iso

from ..api.ratelimit import Limit, RateLimited, hit
from ..payments.service import send_push
from . import service

bp = Blueprint("paypage", __name__, template_folder="templates", static_folder="static",
               static_url_path="/pay/static")
CSRF_COOKIE = "lipa_csrf"
STATUS_LIMIT = Limit(300, 900)  # 300 polls per 15 minutes per client address
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ERRORS = {
    "en": {"invalid_phone": "Enter an M-Pesa number such as 0712 345 678.",
           "payment_in_progress": "This phone already has a payment waiting for its PIN. Finish it first.",
           "request_not_open": "This payment link is no longer open.",
           "csrf": "The form expired. Please try again.", "other": "The payment could not be started."},
    "sw": {"invalid_phone": "Weka nambari ya M-Pesa kama 0712 345 678.",
           "payment_in_progress": "Simu hii tayari ina malipo yanayosubiri PIN. Yamalize kwanza.",
           "request_not_open": "Kiungo hiki cha malipo hakiko wazi tena.",
           "csrf": "Fomu imekwisha muda. Tafadhali jaribu tena.", "other": "Malipo hayakuweza kuanza."},
}


@bp.after_request
def _secure(response):
    if request.blueprint == "paypage":
        response.headers.update(HEADERS)
    return response


@bp.get("/pay/<code>")
def page(code: str):
    """The page: what is being paid, a phone field and Pay (or where the request stands)."""
    return _render(_request_or_404(code))


@bp.post("/pay/<code>")
def pay(code: str):
    """Send the STK push to the phone typed in; then the page follows that attempt."""
    req, lang = _request_or_404(code), _language()
    token = request.form.get("csrf", "")
    if not token or not hmac.compare_digest(token, request.cookies.get(CSRF_COOKIE, "")):
        return _render(req, error=ERRORS[lang]["csrf"], status=403)
    try:
        payment = service.pay(req, request.form.get("phone", ""), language=lang)
    except LipaError as exc:
        # Only a number that is not one comes back to be corrected: a valid one is never shown in full.
        typed = request.form.get("phone", "")[:20] if exc.code == "invalid_phone" else ""
        return _render(req, error=ERRORS[lang].get(exc.code, ERRORS[lang]["other"]), status=exc.http_status,
                       phone=typed)
    # The payment is committed: the push goes now, on a task, not from the response's close. A browser
    # following the 303 at once sometimes left the push unsent (seen in the browser tests): the customer
    # would wait for a prompt that never came.
    services = current_app.extensions["lipa"]
    services.tasks.submit(send_push, payment.id, daraja=services.daraja, callback_url=services.stk_callback_url)
    return redirect(url_for("paypage.page", code=req.code, ref=payment.reference, lang=lang), code=303)


@bp.get("/pay/<code>/status")
def status(code: str):
    """Public JSON the page polls (no personal data); 300 per 15 minutes per client address."""
    try:
        hit(f"paystatus:{request.remote_addr or '-'}", STATUS_LIMIT)
    except RateLimited as exc:
        answer = jsonify({"error": {"code": exc.code, "message": str(exc)}})
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer, 429
    req = service.find(code)
    if req is None:
        return jsonify({"error": {"code": "not_found", "message": "No such payment link."}}), 404
    return jsonify(service.public_status(req, reference=request.args.get("ref"), lang=_language()))


def _request_or_404(code: str):
    req = service.find(code)
    if req is None:
        abort(404)
    return req


def _language() -> str:
    """?lang= wins (the switch on the page), else the browser's preferred language."""
    chosen = request.args.get("lang") or request.form.get("lang")
    if chosen in service.MESSAGES:
        return chosen
    return request.accept_languages.best_match(["en", "sw"], default="en") or "en"


def _render(req, *, error: str = "", status: int = 200, phone: str = ""):
    lang = _language()
    state = service.public_status(req, reference=request.args.get("ref"), lang=lang)
    attempt = state["attempt"]
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = render_template(
        "pay.html", lang=lang, req=req, state=state, attempt=attempt, error=error, csrf=token, phone=phone,
        merchant=req.merchant.name if req.merchant_id else "Lipa", amount=f"{req.amount:,}" if req.amount else "",
        payer=_payer(attempt, req), waiting=bool(attempt and not attempt["failed"] and not attempt["paid"])
        and not state["final"], can_pay=state["status"] == "OPEN" and req.amount is not None
        and not (attempt and not attempt["failed"]), t=TEXTS[lang], other="sw" if lang == "en" else "en",
        updated=iso(req.updated_at))
    response = make_response(html, status)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure,
                        path=f"/pay/{req.code}")
    return response


def _payer(attempt, req) -> str:
    """The payer's phone, masked (never in full), for the attempt this browser started."""
    if not attempt:
        return ""
    payment = service.attempt_of(req, attempt["reference"])
    return mask_phone(payment.phone) if payment is not None and payment.phone else ""


TEXTS = {
    "en": {"title": "Pay with M-Pesa", "amount": "Amount", "to": "To", "for": "For", "phone": "M-Pesa phone number",
           "pay": "Pay", "check": "Check your phone for the M-Pesa prompt", "paid": "Paid", "receipt": "M-Pesa receipt",
           "again": "Try again", "switch": "Kiswahili", "ref": "Reference", "status": "Status",
           "hint": "07…, 2547… or +2547…", "from": "From",
           "live": "Enter your M-Pesa PIN on your phone. This page updates by itself.",
           "closed": "Ask {merchant} for a new payment link."},
    "sw": {"title": "Lipa kwa M-Pesa", "amount": "Kiasi", "to": "Kwa", "for": "Kwa ajili ya",
           "phone": "Nambari ya simu ya M-Pesa", "pay": "Lipa", "check": "Angalia simu yako kwa ombi la M-Pesa",
           "paid": "Imelipwa", "receipt": "Risiti ya M-Pesa", "again": "Jaribu tena", "switch": "English",
           "ref": "Kumbukumbu", "status": "Hali", "hint": "07…, 2547… au +2547…", "from": "Kutoka",
           "live": "Weka PIN yako ya M-Pesa kwenye simu. Ukurasa huu utajisasisha wenyewe.",
           "closed": "Omba {merchant} kiungo kipya cha malipo."},
}

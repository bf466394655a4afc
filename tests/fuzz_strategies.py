"""Hypothesis strategies for hostile provider traffic: each draws one HTTP request for one endpoint.

Two kinds mixed: structurally plausible payloads (the right field names, values mutated: unicode,
huge strings, control characters, deep USSD menus, odd amounts, wrong JSON types) and plain garbage
(random bytes, wrong content types, invalid or deeply nested JSON, empty bodies). Shared by
tests/test_fuzz.py (a small seed set in CI) and bench/fuzz_bench.py (10,000 inputs per endpoint).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from hypothesis import strategies as st

TOKEN = "fuzz-callback-token-0123456789"
KNOWN_CHECKOUTS = tuple(f"ws_CO_FUZZSEED{i:02d}" for i in range(4))  # seeded payments (tests may change them)
KNOWN_SMS_IDS = tuple(f"ATXid_fuzzseed{i}" for i in range(3))  # seeded outbox rows
SEEDED_PHONES = tuple(f"25471100000{i}" for i in range(4))  # the seeded payments' phones
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = (None, FORM, "application/json", "text/plain", "multipart/form-data",
                 "multipart/form-data; boundary=x", "application/xml", "text/plain; charset=latin-1", "*/*")


@dataclass(frozen=True)
class FuzzRequest:
    """One POST: which endpoint it targets, the raw body and content type, and what we know about it."""

    endpoint: str
    path: str
    body: bytes
    content_type: str | None
    wrong_token: bool = False
    known_ref: bool = False  # refers to a seeded payment or SMS: a state change may be legitimate
    chunked: bool = False  # sent with Transfer-Encoding: chunked, no Content-Length

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them readable
        return (f"FuzzRequest({self.endpoint!r}, {self.path!r}, content_type={self.content_type!r}, "
                f"{'chunked, ' if self.chunked else ''}"
                f"body={self.body[:300]!r}{'...' if len(self.body) > 300 else ''} ({len(self.body)} bytes))")


SPECIALS = ("", " ", "\x00", "%s%s%n", "{0}{1}", "' OR 1=1 --", "<script>x</script>", "NaN", "-1", "1e309",
            "٣٤٥", "５００", "🙂🙂", "\u202e1*2", "\ufeff1", "null", "[]", "{}", "*", "**", "#", "1#", "0x1F",
            "%00", "%ZZ", "+", "&", "=", "\r\n", "\t", "ẞ", "İ", "ﬃ", "\u0301", "9" * 40)
CONTROL = "".join(map(chr, range(0, 32))) + "\x7f\x85\u2028\u2029\u200b\u202e\ufeff"

small_text = st.one_of(
    st.text(max_size=30), st.sampled_from(SPECIALS), st.text(alphabet=CONTROL, max_size=10),
    st.from_regex(r"[0-9A-Za-z_*#+ -]{0,20}", fullmatch=True),
)
huge_text = st.builds(lambda c, n: c * n, st.sampled_from("A9*#\x00é🙂%"), st.integers(200, 70_000))
nasty_text = st.one_of(*[small_text] * 12, huge_text)  # a body over 64 kB is refused whole: keep those rare

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(), small_text,
)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(small_text, c, max_size=4),
                           max_leaves=12)
amounts = st.one_of(
    st.integers(-10, 300_000), st.integers(min_value=-(10**30), max_value=10**30), st.floats(),
    st.sampled_from(["500", "500.00", "1,000.00", "1e3", "-1", "0", "NaN", "Infinity", "0x10", " 500 ", "５００",
                     "10.5", "1" * 40, "", True, None, [], {}]),
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{0,3})?", fullmatch=True),
)
digits = st.from_regex(r"[0-9]{9}", fullmatch=True)
kenyan_phones = st.one_of(
    digits.map(lambda d: "2547" + d[:8]), digits.map(lambda d: "+2547" + d[:8]), digits.map(lambda d: "07" + d[:8]),
    digits.map(lambda d: "7" + d[:8]), digits.map(lambda d: "01" + d[:8]), digits.map(lambda d: "+254 7" + d[:8]),
)
phones = st.one_of(*[kenyan_phones] * 6, st.sampled_from(["+254712345678", "254700000001", "0711000111"]),
                   nasty_text, st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True))


def _maybe(strategy):
    """A field value, or (one time in ten) None: the field is left out."""
    return st.one_of(*[strategy] * 9, st.just(None))


def _one_in(n: int):
    """True one time in n (st.integers(0, n - 1) == 0 would be far likelier: hypothesis favours 0)."""
    return st.sampled_from([False] * (n - 1) + [True])  # hypothesis leans to the first: the common case


def _form_bytes(fields: list[tuple[str, str]]) -> bytes:
    return urlencode(fields).encode()


@st.composite
def form_request(draw, endpoint: str, path: str, fields: dict, clean: bool = False):
    """Fields (None = left out) in a form body: clean, urlencoded as AT sends it; else sometimes with extra
    keys or in a wrong envelope."""
    pairs = [(k, v) for k, v in ((k, draw(s)) for k, s in fields.items()) if v is not None]
    if not clean:
        pairs += draw(st.lists(st.tuples(small_text, small_text), max_size=2))  # extra or repeated keys
    pairs = [(str(k), str(v)) for k, v in pairs]
    envelope = "form" if clean else draw(st.sampled_from(["form"] * 6 + ["multipart", "json", "latin1", "raw"]))
    if envelope == "form":
        return FuzzRequest(endpoint, path, _form_bytes(pairs), FORM)
    if envelope == "multipart":
        parts = b"".join(b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                         % (k.encode("utf-8", "replace"), v.encode("utf-8", "replace")) for k, v in pairs)
        return FuzzRequest(endpoint, path, parts + b"--B--\r\n", "multipart/form-data; boundary=B")
    if envelope == "json":
        return FuzzRequest(endpoint, path, json.dumps(dict(pairs)).encode(), "application/json")
    if envelope == "latin1":
        return FuzzRequest(endpoint, path, urlencode(pairs, encoding="latin-1", errors="replace").encode(), FORM)
    raw = "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")  # unescaped %, &, =
    return FuzzRequest(endpoint, path, raw, draw(st.sampled_from(CONTENT_TYPES)))


@st.composite
def garbage(draw, endpoint: str, path: str):
    """Not a provider message at all."""
    body = draw(st.one_of(
        st.binary(max_size=200), st.just(b""), st.builds(lambda n: b"[" * n, st.integers(1, 60_000)),
        st.builds(lambda n: b'{"a":' * n, st.integers(1, 12_000)),
        st.sampled_from([b"{", b"null", b"[]", b'"x"', b"0", b"NaN", b"\xff\xfe{", b"\xef\xbb\xbf{}", b"{}" * 10]),
        json_values.map(lambda v: json.dumps(v).encode()),
    ))
    return FuzzRequest(endpoint, path, body, draw(st.sampled_from(CONTENT_TYPES)))


def mix(endpoint: str, path: str, clean, hostile):
    """Three parts well-formed (deep paths get exercised), three parts hostile, one part garbage; one in
    eight of the hostile and garbage ones streamed (chunked, no Content-Length)."""
    streamed = st.tuples(st.one_of(hostile, hostile, hostile, garbage(endpoint, path)), _one_in(8)).map(
        lambda pair: replace(pair[0], chunked=pair[1]))
    return st.one_of(clean, clean, clean, streamed, streamed, streamed, streamed)


# --- Africa's Talking ---

menu_words = st.one_of(
    st.sampled_from(["1", "2", "3", "4", "0", "00", "98", "99", "1", "1", "12345", "500", "1", "2", ""]),
    st.from_regex(r"[0-9]{1,8}", fullmatch=True), small_text,
)
ussd_text = st.one_of(
    st.lists(menu_words, max_size=45).map("*".join),
    st.lists(menu_words, min_size=1, max_size=6).map(lambda w: "*" + "*".join(w) + "*"),
    st.sampled_from(["1*12345*500*1", "1*ACC1*250000*1", "1*12345*250001", "4*2", "3*98*98*0", "1*0*1*x*500*1"]),
    nasty_text,
)
session_ids = st.sampled_from([f"ATUid_fuzz{i}" for i in range(6)]) | st.from_regex(r"ATUid_[0-9a-f]{8,16}",
                                                                                      fullmatch=True)


@st.composite
def _ussd(draw, clean: bool):
    def field(good, bad=nasty_text):
        return good if clean else _maybe(good | bad)
    phone = draw(st.sampled_from(SEEDED_PHONES) | kenyan_phones)
    session = f"ATUid_{''.join(c for c in phone if c.isdigit())[-9:]}_{draw(st.integers(0, 2))}"  # one per phone
    return draw(form_request("ussd", "/ussd", {
        "sessionId": field(st.just(session), session_ids), "serviceCode": field(st.just("*384*123#"), small_text),
        "phoneNumber": field(st.just(phone), phones), "networkCode": field(st.sampled_from(["63902", "63903"])),
        "text": field(ussd_text),
    }, clean=clean))


ussd = mix("ussd", "/ussd", _ussd(True), _ussd(False))


def _ussd_events(clean: bool):
    def field(good, bad=nasty_text):
        return good if clean else _maybe(good | bad)
    return form_request("ussd_events", "/ussd/events", {
        "sessionId": field(session_ids), "phoneNumber": field(kenyan_phones, phones),
        "status": field(st.sampled_from(["Success", "Incomplete", "Failed"])),
        "hopsCount": field(st.integers(0, 40).map(str), st.integers().map(str) | small_text),
        "errorMessage": field(small_text), "cost": field(st.just("KES 0.0000")), "serviceCode": field(st.just("*384#")),
        "date": field(st.just("2026-11-23 10:15:02")), "networkCode": field(st.just("63902")),
    }, clean=clean)


ussd_events = mix("ussd_events", "/ussd/events", _ussd_events(True), _ussd_events(False))

sms_texts = st.one_of(
    st.sampled_from(["STATUS", "hali", "HISTORY", "STOP", "acha", "START", "HELP", "msaada", "PAY 12345 500",
                     "lipa ACC1 10", "PAY", "PAY 12345 -5", "PAY 1 1e9", "pay ５００ ５００", "STATUS LPXXXX"]),
    st.tuples(st.sampled_from(["PAY", "LIPA", "STATUS", "HELP", "pay"]), small_text, amounts.map(str))
    .map(" ".join), nasty_text,
)
at_ids = st.from_regex(r"ATXid_[0-9a-f]{8,32}", fullmatch=True)
dates = st.sampled_from(["2026-11-23 10:15:02", "2026-11-23T10:15:02Z", "2026-11-23T10:15:02+03:00"])


def _sms_inbound(clean: bool):
    def field(good, bad=nasty_text):
        return good if clean else _maybe(good | bad)
    return form_request("sms_inbound", "/sms/inbound", {
        "from": field(kenyan_phones, phones), "to": field(st.just("22384")), "text": field(sms_texts),
        "date": field(dates, st.just("9999-99-99") | small_text), "id": field(at_ids), "linkId": field(small_text),
        "networkCode": field(st.just("63902")),
    }, clean=clean)


sms_inbound = mix("sms_inbound", "/sms/inbound", _sms_inbound(True), _sms_inbound(False))
dlr_status = st.sampled_from(["Success", "Failed", "Sent", "Submitted", "Buffered", "Rejected", "AbsentSubscriber",
                              "Expired", "success", " SUCCESS "])


@st.composite
def _dlr(draw, clean: bool):
    def field(good, bad=nasty_text):
        return good if clean else _maybe(good | bad)
    known = draw(_one_in(5))
    msg_id = draw(st.sampled_from(KNOWN_SMS_IDS)) if known else draw(field(at_ids))
    request = draw(form_request("sms_delivery", "/sms/delivery", {
        "id": st.just(msg_id), "status": field(dlr_status), "phoneNumber": field(kenyan_phones, phones),
        "networkCode": field(st.just("63902")), "failureReason": field(st.just("UserInBlackList") | small_text),
        "retryCount": field(st.integers(0, 10).map(str), st.integers().map(str) | small_text),
    }, clean=clean))
    return FuzzRequest(request.endpoint, request.path, request.body, request.content_type, known_ref=known)


sms_delivery = mix("sms_delivery", "/sms/delivery", _dlr(True), _dlr(False))


# --- Daraja ---

def _mutate(draw, doc: dict, clean: bool) -> dict:
    """Hostile: drop, replace or add keys of a JSON object, the way a confused sender would."""
    if clean:
        return doc
    out = {}
    for key, value in doc.items():
        choice = draw(st.sampled_from(["keep"] * 6 + ["drop", "replace"]))
        if choice == "drop":
            continue
        out[key] = draw(json_values) if choice == "replace" else value
    for key, value in draw(st.dictionaries(small_text, json_values, max_size=2)).items():
        out.setdefault(key, value)
    return out


def _json_request(draw, endpoint: str, path: str, doc, clean: bool, known: bool = False) -> FuzzRequest:
    """Proper JSON (NaN and Infinity included, as Python writes them); hostile: a wrong token or content type."""
    wrong = not clean and draw(_one_in(4))
    token = draw(small_text.filter(lambda t: t != TOKEN and "/" not in t and t.strip())) if wrong else TOKEN
    content_type = "application/json" if clean else draw(st.sampled_from(CONTENT_TYPES))
    body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return FuzzRequest(endpoint, path.format(token=token), body, content_type, wrong_token=wrong, known_ref=known)


def _pick(draw, clean: bool, good, bad=json_values):
    return draw(good if clean else good | bad)


good_amounts = st.one_of(st.integers(1, 250_000), st.sampled_from([500, 500.0, 1.0, "500", "500.00", "1,000.00"]))
stk_codes = st.sampled_from([0, 1, 1032, 1037, 2001, "0", "1032", "SFC_IC0003", " 0 ", "00"])
receipts = st.from_regex(r"[A-Z0-9]{10}", fullmatch=True)


@st.composite
def _stk(draw, clean: bool):
    known = draw(_one_in(5))
    checkout = draw(st.sampled_from(KNOWN_CHECKOUTS)) if known else _pick(
        draw, clean, st.from_regex(r"ws_CO_[0-9]{10,22}", fullmatch=True))
    values = {"Amount": good_amounts if clean else amounts, "MpesaReceiptNumber": receipts,
              "TransactionDate": st.just(20191219102115), "PhoneNumber": kenyan_phones.map(lambda p: int(p[-9:]))}
    items = [{"Name": name, "Value": _pick(draw, clean, strategy)} for name, strategy in values.items()
             if clean or not draw(_one_in(6))]
    if not clean:
        items += draw(st.lists(st.fixed_dictionaries({"Name": small_text}, optional={"Value": json_values}),
                               max_size=2))
    callback = _mutate(draw, {
        "MerchantRequestID": draw(st.from_regex(r"[0-9]{5}-[0-9]{8}-1", fullmatch=True)),
        "CheckoutRequestID": checkout, "ResultCode": _pick(draw, clean, stk_codes, st.integers() | scalars),
        "ResultDesc": draw(nasty_text), "CallbackMetadata": {"Item": items},
    }, clean)
    envelope = "ok" if clean else draw(st.sampled_from(["ok"] * 8 + ["no_body", "flat"]))
    doc = {"Body": {"stkCallback": callback}} if envelope == "ok" else (
        {"Body": callback} if envelope == "no_body" else callback)
    return _json_request(draw, "stk_callback", "/mpesa/stk/callback/{token}", doc, clean, known=known)


@st.composite
def _c2b(draw, endpoint: str, path: str, clean: bool):
    doc = _mutate(draw, {
        "TransactionType": draw(st.sampled_from(["Pay Bill", "Buy Goods"])),
        "TransID": _pick(draw, clean, receipts), "TransTime": "20191122063845",
        "TransAmount": _pick(draw, clean, good_amounts, amounts), "BusinessShortCode": "600638",
        "BillRefNumber": _pick(draw, clean, st.from_regex(r"[A-Za-z0-9-]{0,24}", fullmatch=True), nasty_text),
        "InvoiceNumber": "", "OrgAccountBalance": draw(amounts), "ThirdPartyTransID": "",
        "MSISDN": _pick(draw, clean, kenyan_phones | st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
                        | st.just("2547 ***** 126"), phones),
        "FirstName": draw(nasty_text), "MiddleName": draw(small_text), "LastName": _pick(draw, clean, small_text),
    }, clean)
    return _json_request(draw, endpoint, path, doc, clean)


@st.composite
def _result(draw, endpoint: str, path: str, clean: bool):
    params = [{"Key": key, "Value": _pick(draw, clean, value)} for key, value in (
        ("Amount", good_amounts), ("OriginalTransactionID", receipts), ("TransactionReceipt", receipts))]
    result = _mutate(draw, {
        "ResultType": 0, "ResultCode": _pick(draw, clean, st.sampled_from([0, "0", 1, "R000001", 2001, "21"])),
        "ResultDesc": draw(nasty_text),
        "OriginatorConversationID": _pick(draw, clean, st.from_regex(r"[0-9]{5}-[0-9]{7}-1", fullmatch=True)),
        "ConversationID": _pick(draw, clean, st.from_regex(r"AG_[0-9]{8}_[0-9a-f]{20}", fullmatch=True)),
        "TransactionID": draw(receipts),
        "ResultParameters": {"ResultParameter": params},
    }, clean)
    doc = result if not clean and draw(_one_in(10)) else {"Result": result}
    return _json_request(draw, endpoint, path, doc, clean)


def _daraja(endpoint: str, path: str, build, *args):
    return mix(endpoint, path.format(token=TOKEN), build(*args, True), build(*args, False))


def _both(endpoint: str, path: str, build):
    return _daraja(endpoint, path, build, endpoint, path)


stk_callback = _daraja("stk_callback", "/mpesa/stk/callback/{token}", _stk)
c2b_validation = _both("c2b_validation", "/mpesa/c2b/validation/{token}", _c2b)
c2b_confirmation = _both("c2b_confirmation", "/mpesa/c2b/confirmation/{token}", _c2b)
mpesa_result = _both("mpesa_result", "/mpesa/result/{token}", _result)
mpesa_timeout = _both("mpesa_timeout", "/mpesa/timeout/{token}", _result)

ENDPOINTS = {
    "ussd": ussd, "ussd_events": ussd_events, "sms_inbound": sms_inbound, "sms_delivery": sms_delivery,
    "stk_callback": stk_callback, "c2b_validation": c2b_validation, "c2b_confirmation": c2b_confirmation,
    "mpesa_result": mpesa_result, "mpesa_timeout": mpesa_timeout,
}

"""JSON from providers, parsed so that whatever they send can be stored: found by the fuzz test (issue 7).

Two things json.loads lets through that later fail far from the request: nesting deep enough to raise
RecursionError (not a ValueError, so it escaped every `except ValueError` and became a 500), and the NUL
character ("\\u0000" in JSON), which PostgreSQL refuses in text columns: a C2B confirmation whose
FirstName carried one could never be recorded (the background task failed on every retry), on SQLite
it could. Both are answered here, once, for every provider body.
"""
from __future__ import annotations

import json

MAX_DEPTH = 32  # Daraja's deepest body (a Result's ResultParameters) is 5 levels


def loads(body: bytes | str):
    """Like json.loads, but NULs are dropped from every string (keys too) and a body nested deeper than
    MAX_DEPTH raises ValueError, as any other malformed body does."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return data if _plainly_safe(body) else _clean(data, 0)


def _plainly_safe(body: bytes | str) -> bool:
    """Whether the text alone shows there is nothing to clean: no NUL escape anywhere, and fewer brackets in
    all than MAX_DEPTH, so no value can nest deeper. True for every real callback, which then skips the walk
    over its values (a tenth of an acknowledgement's CPU); a false "no" only costs that walk."""
    if isinstance(body, bytes):  # a NUL byte at all: UTF-16 or UTF-32, which json.loads also reads
        return (b"\x00" not in body and b"\\u0000" not in body
                and body.count(b"{") + body.count(b"[") <= MAX_DEPTH)
    return "\\u0000" not in body and body.count("{") + body.count("[") <= MAX_DEPTH


def _clean(value, depth: int):
    if depth > MAX_DEPTH:
        raise ValueError("JSON nested too deeply")
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {_clean(k, depth): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value

"""Hostile input stopped at the app's edge, before any route (found by the fuzz and refusal tests, issue 7).

BodyLimit, the body-size limit also for bodies streamed without a Content-Length (Transfer-Encoding:
chunked): Flask's MAX_CONTENT_LENGTH refuses a declared Content-Length over the limit, but a chunked
body carries none: gunicorn and werkzeug then hand Flask a stream that Flask reads only up to the limit
and silently cuts there, so a 70 kB SMS or callback was stored and applied as its first 64 kB. Here
such a body is read up to one byte past the limit before the app sees it, then given to the app with
the Content-Length it really has: over the limit, every route refuses it with its usual 413 (USSD with
a short END), under it, nothing changes. A body over the limit (declared or streamed) is read through
and dropped, up to DRAIN_AT_MOST, so the caller sees the 413 rather than a reset connection.

SafeJSONProvider: request.get_json() through shared.safejson, so JSON nested deep enough to raise
RecursionError is a 400 like any malformed body (it was a 500 with a traceback), and NULs, which
PostgreSQL cannot store, are dropped on both databases alike.
"""
from __future__ import annotations

import io

from flask.json.provider import DefaultJSONProvider

from shared import safejson

DRAIN_AT_MOST = 1024 * 1024  # past this a sender is not just careless: stop reading, let the connection drop


class BodyLimit:
    """WSGI middleware: buffer a chunked body of at most ``limit`` bytes, mark a longer one as too large.

    ``larger`` names the paths that take more ({path: bytes}, the statement upload's 20 MB): without it, a
    statement over 64 KiB was drained here and reached its route empty ("send the file"), whatever the
    route's own limit said."""

    def __init__(self, app, limit: int, larger: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})

    def __call__(self, environ, start_response):
        declared = _length(environ)
        limit = self.larger.get(environ.get("PATH_INFO", ""), self.limit)
        if declared is not None and limit < declared <= DRAIN_AT_MOST:
            # Read the refused body through, so the answer (413) reaches the caller and a kept-alive connection
            # does not start its next request inside this body's leftovers (gunicorn does not skip them).
            _drain(environ["wsgi.input"], declared)
            environ["wsgi.input"] = io.BytesIO()
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and declared is None:
            body = _read(environ["wsgi.input"], limit + 1)
            if len(body) > limit:  # read (and drop) a bounded rest, so the caller gets its 413, not a reset
                _drain(environ["wsgi.input"], DRAIN_AT_MOST)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))  # limit + 1 when it was longer: a 413 wherever it is read
            del environ["HTTP_TRANSFER_ENCODING"]  # now a plain body (werkzeug ignores a length beside "chunked")
        return self.app(environ, start_response)


def _length(environ) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _drain(stream, most: int) -> None:
    left = most
    while left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            return
        left -= len(chunk)


def _read(stream, most: int) -> bytes:
    """Up to `most` bytes; a stream may return fewer than asked before its end."""
    parts, size = [], 0
    while size < most:
        chunk = stream.read(most - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with request bodies parsed by shared.safejson (ValueError for what nests too deep)."""

    def loads(self, s, **kwargs):
        return safejson.loads(s)

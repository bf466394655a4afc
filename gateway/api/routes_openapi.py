"""GET /api/v1/openapi.json: the API described for clients and tools (public)."""
from __future__ import annotations

from functools import lru_cache

from flask import jsonify

from . import openapi
from .common import bp


@lru_cache(maxsize=1)
def _document() -> dict:
    return openapi.document()


@bp.get("/openapi.json", endpoint="openapi")
def openapi_json():
    """The OpenAPI 3.1 document; no token needed."""
    return jsonify(_document())

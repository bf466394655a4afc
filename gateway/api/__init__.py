"""The admin and merchant JSON API under /api/v1: thin routes over Flask-free services."""
from __future__ import annotations

import importlib
import pkgutil


def register(app) -> None:
    """Import every routes_* module (each adds its routes to the one blueprint), then mount it."""
    from .common import bp

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("routes_")):
        importlib.import_module(f"{__name__}.{module}")
    if "api" not in app.blueprints:
        app.register_blueprint(bp)

"""The Lipa gateway: a Flask service built by create_app()."""
from .app import create_app

__all__ = ["create_app"]

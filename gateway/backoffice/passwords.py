"""The password rule for staff: at least 12 characters, not the username, not a well-known password.

Length beats composition rules (NIST SP 800-63B); the list (common_passwords.txt, shipped with the package)
refuses the passwords an attacker tries first. Flask-free: create-staff and the password route call it.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from shared.errors import InvalidInput

MIN_LENGTH = 12
LIST = Path(__file__).with_name("common_passwords.txt")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def check_password_rule(password: str, username: str) -> None:
    """InvalidInput (code weak_password) saying which rule the password breaks."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_LENGTH} characters", code="weak_password")
    if password.strip().lower() == username.strip().lower():
        raise InvalidInput("password must not be the username", code="weak_password")
    if password.strip().lower() in common_passwords() or len(set(password)) < 3:
        raise InvalidInput("password is on the list of common passwords; choose another", code="weak_password")

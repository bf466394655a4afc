"""Daraja's SecurityCredential: the initiator password RSA-encrypted (PKCS#1 v1.5) with Safaricom's
certificate, base64-encoded. Neither the password nor the credential is ever logged or shown in a repr.

In the ``local`` profile with no certificate configured a throwaway key pair made at runtime stands in
for Safaricom's certificate, so the simulator flow works with no files.
"""
from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.errors import NotAllowed

LOCAL_INITIATOR = "testapi"
LOCAL_PASSWORD = "local-initiator-password"  # only ever encrypted with the throwaway key
_lock = threading.Lock()
_keys: dict[str, rsa.RSAPrivateKey] = {}


@dataclass(frozen=True)
class Initiator:
    """Who Daraja is told sends a reversal or B2C: the initiator name and its SecurityCredential."""

    name: str
    credential: str = field(repr=False)


def load_public_key(cert_path: str) -> rsa.RSAPublicKey:
    """The RSA public key of an X.509 certificate file, PEM or DER."""
    data = Path(cert_path).read_bytes()
    loader = x509.load_pem_x509_certificate if b"-----BEGIN" in data else x509.load_der_x509_certificate
    key = loader(data).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the M-Pesa certificate must hold an RSA public key")
    return key


def encrypt(password: str, key: rsa.RSAPublicKey) -> str:
    """base64(RSA PKCS#1 v1.5 encrypt(password)): Daraja's SecurityCredential."""
    return base64.b64encode(key.encrypt(password.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


def security_credential(password: str, cert_path: str) -> str:
    """Encrypt the initiator password with the certificate at cert_path (PEM or DER)."""
    return encrypt(password, load_public_key(cert_path))


def _throwaway_key() -> rsa.RSAPrivateKey:
    """A key pair made once per process; it never leaves memory."""
    with _lock:
        if "local" not in _keys:
            _keys["local"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _keys["local"]


def local_credential(password: str) -> str:
    """A credential the simulator accepts: the password encrypted with the throwaway key."""
    return encrypt(password, _throwaway_key().public_key())


def initiator_for(config) -> Initiator:
    """The configured initiator, or in the local profile a stand-in; NotAllowed when refunds are not set up."""
    name, password, cert = config.mpesa_initiator_name, config.mpesa_initiator_password, config.mpesa_cert_path
    if cert and name and password:
        try:
            return Initiator(name, security_credential(password, cert))
        except (OSError, ValueError) as exc:
            raise NotAllowed(f"MPESA_CERT_PATH cannot be read as an X.509 RSA certificate ({type(exc).__name__}).",
                             code="refunds_not_configured") from None
    if config.is_local and not cert:
        return Initiator(name or LOCAL_INITIATOR, local_credential(password or LOCAL_PASSWORD))
    raise NotAllowed("Refunds need MPESA_INITIATOR_NAME, MPESA_INITIATOR_PASSWORD and MPESA_CERT_PATH.",
                     code="refunds_not_configured")

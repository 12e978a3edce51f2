"""Secrets the lab makes itself: the cluster CA, client certificates, a bootstrap token, passwords, an SSH key.

Made in Python (``cryptography``) so that workers can join with the CA's hash
and the user gets a kubeconfig without logging in to the master.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import string

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

__all__ = ["KeyPair", "bootstrap_token", "ca_cert_hash", "client_cert", "make_ca", "password", "ssh_keypair"]

KeyPair = tuple[str, str]  # (certificate PEM, private key PEM)
_TOKEN_CHARS = string.ascii_lowercase + string.digits


def password(length: int = 24) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def bootstrap_token() -> str:
    """``[a-z0-9]{6}.[a-z0-9]{16}``, the form kubeadm requires."""
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(6)) + "." + \
        "".join(secrets.choice(_TOKEN_CHARS) for _ in range(16))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def make_ca(common_name: str = "kubernetes", years: int = 10) -> KeyPair:
    """A self-signed CA like the one kubeadm makes (RSA 2048, CN ``kubernetes``)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key)


def client_cert(ca: KeyPair, common_name: str, organization: str, days: int = 365) -> KeyPair:
    """A client certificate signed by ``ca`` (the kubeconfig's user; ``organization`` is its group)."""
    ca_cert = x509.load_pem_x509_certificate(ca[0].encode())
    ca_key = serialization.load_pem_private_key(ca[1].encode(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key)


def ca_cert_hash(ca_cert_pem: str) -> str:
    """``sha256:<hex>`` of the CA's SubjectPublicKeyInfo: what ``kubeadm join --discovery-token-ca-cert-hash`` takes."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def ssh_keypair(comment: str) -> tuple[str, str]:
    """(private key in OpenSSH form, public key line) of a new ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}"

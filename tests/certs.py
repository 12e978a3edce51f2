"""Certificates made for a test: a CA, a server certificate for 127.0.0.1, client certificates with SPIFFE IDs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM bytes and as files."""

    cert: bytes
    key: bytes
    cert_file: Path
    key_file: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Authority:
    """A CA that writes what it issues under ``directory``."""

    def __init__(self, directory: Path, name: str = "switchman test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.file = directory / f"{name.replace(' ', '-')}.pem"
        self.file.write_bytes(self.pem)

    def issue(self, name: str, *, ips: tuple[str, ...] = (), dns: tuple[str, ...] = (), uris: tuple[str, ...] = (),
              server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        key_pem = _key_pem(key)
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key_pem)
        return Issued(cert, key_pem, cert_file, key_file)


def install(issued: Issued, cert_file: Path, key_file: Path) -> None:
    """Put ``issued`` in place of the certificate and key at these paths, each file replaced whole (renamed
    over, as cert-manager and SPIFFE agents do), the key first."""
    replace_file(key_file, issued.key)
    replace_file(cert_file, issued.cert)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path`` whole (renamed over)."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


async def served_certificate(port: int, trust: Authority, client: Issued | None = None,
                             alpn: str = "h2") -> x509.Certificate:
    """The certificate a TLS server on 127.0.0.1:``port`` presents to a new connection (which ``trust`` must
    have signed), presenting ``client`` if given."""
    context = ssl.create_default_context(cafile=str(trust.file))
    context.set_alpn_protocols([alpn])
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):  # a server that refuses the client's certificate
            await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


def names(cert: x509.Certificate) -> list[str]:
    """The DNS and IP names of a certificate."""
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n) for n in sans.get_values_for_type(x509.DNSName)] + [
        str(n) for n in sans.get_values_for_type(x509.IPAddress)]


async def new_certificate(port: int, trust: Authority, old_serial: int, client: Issued | None = None,
                          alpn: str = "h2", timeout: float = 10.0) -> x509.Certificate:
    """The certificate the server on ``port`` presents once it is no longer the one numbered ``old_serial``
    (asked every 0.05 s); AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        served = await served_certificate(port, trust, client, alpn)
        if served.serial_number != old_serial:
            return served
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} still presents certificate {old_serial:x} after {timeout} s")
        await asyncio.sleep(0.05)

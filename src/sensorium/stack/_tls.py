"""A local certificate authority and server certificate for `sensorium up --tls`.

Clients trust ``ca.pem``; the broker (MQTT over TLS) and the HTTPS listener serve
``server.pem`` for ``localhost`` and ``127.0.0.1``. Made once, reused after.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sensorium.stack._mosquitto import TlsFiles
from sensorium.stack._processes import Account

__all__ = ["ensure_local_tls"]

_VALID_FOR = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sensorium local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ensure_local_tls(folder: Path, *, readers: list[Account]) -> TlsFiles:
    """The CA and server certificate under ``folder``, made if missing.

    ``readers`` are the service accounts that must read the key (the broker's).
    """
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    if all(path.exists() for path in (files.ca_file, files.cert_file, files.key_file)):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    now = dt.datetime.now(dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Sensorium local CA"))
        .issuer_name(_name("Sensorium local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca-key.pem").write_bytes(_pem_key(ca_key))
    (folder / "ca-key.pem").chmod(0o600)
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(_pem_key(server_key))
    # The broker's account reads the key: make it that account's, unreadable to others.
    files.key_file.chmod(0o600)
    for account in readers:
        if not account.is_self:
            os.chown(files.key_file, account.uid, account.gid)
    for path in (files.ca_file, files.cert_file):
        path.chmod(0o644)
    return files

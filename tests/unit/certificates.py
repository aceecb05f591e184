"""Throwaway TLS files for tests: a CA, a server certificate for 127.0.0.1 and a client
certificate, all signed by the CA. Made with the ``cryptography`` package when it is installed,
else with the ``openssl`` command; :func:`make_certificates` returns ``None`` when neither is
there."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CA_NAME", "CLIENT_NAME", "Certificates", "make_certificates"]

CA_NAME = "stockflow test CA"
CLIENT_NAME = "stockflow client"
SERVER_NAME = "stockflow broker"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path) -> Certificates | None:
    directory.mkdir(parents=True, exist_ok=True)
    files = Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            return None
        _with_openssl(directory, files)
    else:
        _with_cryptography(files)
    return files


def _with_cryptography(files: Certificates) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder(CA_NAME, name(CA_NAME), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaves = [
        (SERVER_NAME, files.server_cert, files.server_key, ExtendedKeyUsageOID.SERVER_AUTH),
        (CLIENT_NAME, files.client_cert, files.client_key, ExtendedKeyUsageOID.CLIENT_AUTH),
    ]
    for common_name, cert_path, key_path, usage in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            builder(common_name, ca.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            leaf = leaf.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert_path.write_bytes(
            leaf.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        write_key(key, key_path)


def _with_openssl(directory: Path, files: Certificates) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key = directory / "ca.key"
    openssl("req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(files.ca),
            "-days", "1", "-subj", f"/CN={CA_NAME}")  # fmt: skip
    leaves = [
        (SERVER_NAME, files.server_cert, files.server_key,
         "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"),
        (CLIENT_NAME, files.client_cert, files.client_key, "extendedKeyUsage=clientAuth\n"),
    ]  # fmt: skip
    for serial, (common_name, cert_path, key_path, extensions) in enumerate(leaves, start=2):
        request = directory / f"{key_path.stem}.csr"
        extfile = directory / f"{key_path.stem}.ext"
        extfile.write_text("basicConstraints=critical,CA:FALSE\n" + extensions)
        openssl("req", "-new", *new_key, "-keyout", str(key_path), "-out", str(request),
                "-subj", f"/CN={common_name}")  # fmt: skip
        openssl("x509", "-req", "-in", str(request), "-CA", str(files.ca), "-CAkey", str(ca_key),
                "-set_serial", str(serial), "-days", "1", "-extfile", str(extfile),
                "-out", str(cert_path))  # fmt: skip

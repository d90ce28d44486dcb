"""Test certificates, made at test time: a CA, a server certificate for loopback, clients.

``make_tls_files(directory)`` writes PEM files: a self-signed CA; a server certificate for
``localhost`` and ``127.0.0.1`` signed by it; a client certificate (CN ``router``) signed by
it; and a client certificate signed by another CA, which a mutual-TLS server must refuse.
Two more clients of the same CA carry subject alternative names: the router's identity
(:data:`ROUTER_DNS`, :data:`ROUTER_URI`) and another workload's (:data:`INTRUDER_DNS`), for
SAN pinning. :func:`reissue_server` rotates the server certificate in place (same CA, new
key and expiry), as cert-manager does. EC P-256 keys keep generation fast (milliseconds).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROUTER_DNS = "router.tierroute.svc"
ROUTER_URI = "spiffe://cluster.local/ns/tierroute/sa/router"
INTRUDER_DNS = "batch-job.tierroute.svc"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_client_cert: Path
    """Signed by another CA: a mutual-TLS server must refuse it."""
    rogue_client_key: Path
    ca_key: Path
    router_cert: Path
    """Client certificate naming :data:`ROUTER_DNS` and :data:`ROUTER_URI`."""
    router_key: Path
    intruder_cert: Path
    """Client certificate of the same CA naming :data:`INTRUDER_DNS` only."""
    intruder_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: str,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    lifetime: dt.timedelta = dt.timedelta(days=1),
) -> Any:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    cert = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    server: bool,
    names: list[x509.GeneralName] | None = None,
    lifetime: dt.timedelta = dt.timedelta(days=1),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    builder = _builder(common_name, ca_cert.subject, key.public_key(), lifetime).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, key: ec.EllipticCurvePrivateKey | None, cert: x509.Certificate) -> Path:
    if key is not None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    else:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate the CA, server and client certificates into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("tierroute test CA")
    server_key, server_cert = _leaf("localhost", ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("router", ca_key, ca_cert, server=False)
    rogue_ca_key, rogue_ca_cert = _ca("some other CA")
    rogue_key, rogue_cert = _leaf("router", rogue_ca_key, rogue_ca_cert, server=False)
    router_names: list[x509.GeneralName] = [
        x509.DNSName(ROUTER_DNS),
        x509.UniformResourceIdentifier(ROUTER_URI),
    ]
    router_key, router_cert = _leaf("router", ca_key, ca_cert, False, router_names)
    intruder_key, intruder_cert = _leaf(
        "router", ca_key, ca_cert, False, [x509.DNSName(INTRUDER_DNS)]
    )
    return TlsFiles(
        ca=_write(directory / "ca.pem", None, ca_cert),
        server_cert=_write(directory / "server.pem", None, server_cert),
        server_key=_write(directory / "server.key", server_key, server_cert),
        client_cert=_write(directory / "client.pem", None, client_cert),
        client_key=_write(directory / "client.key", client_key, client_cert),
        rogue_client_cert=_write(directory / "rogue.pem", None, rogue_cert),
        rogue_client_key=_write(directory / "rogue.key", rogue_key, rogue_cert),
        ca_key=_write(directory / "ca.key", ca_key, ca_cert),
        router_cert=_write(directory / "router.pem", None, router_cert),
        router_key=_write(directory / "router.key", router_key, router_cert),
        intruder_cert=_write(directory / "intruder.pem", None, intruder_cert),
        intruder_key=_write(directory / "intruder.key", intruder_key, intruder_cert),
    )


def reissue_server(files: TlsFiles, lifetime: dt.timedelta) -> x509.Certificate:
    """A new server key and certificate (same CA and names, ``lifetime``), written in place."""
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = _leaf("localhost", ca_key, ca_cert, server=True, lifetime=lifetime)
    _write(files.server_key, key, cert)
    _write(files.server_cert, None, cert)
    return cert


def client_pem(files: TlsFiles, names: list[x509.GeneralName]) -> tuple[bytes, bytes]:
    """PEM certificate and key of a client certificate of the test CA naming ``names``."""
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = _leaf("client", ca_key, ca_cert, server=False, names=names)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem

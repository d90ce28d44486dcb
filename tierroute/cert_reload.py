"""Server certificates that follow their files: rotated in place, served without a restart.

cert-manager (or any rotation) rewrites ``server.tls``'s files under a running pod; the kubelet
swaps the mounted Secret atomically through a symlink. :class:`ReloadingServerCredentials`
hands gRPC ``dynamic_ssl_server_credentials`` whose fetcher gRPC calls before every new
connection's handshake: it compares the files' ``stat`` (modification time, size, inode: cheap)
with what it loaded and, when one changed, reads and checks the new set (the key must match the
certificate, so a half-written rotation is never served) and returns it. A set that does not
load keeps the current one serving and is tried again on the next connection. Connections
already open keep their handshake; only new ones see the new certificate.

:func:`certificate_not_after` reads a PEM certificate's expiry (seconds since the epoch) with
the standard library only: the served certificate's expiry is a metric, so a rotation that
stopped happening shows up before the certificate lapses.
"""

from __future__ import annotations

import base64
import calendar
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from tierroute.config import ServerTls, read_pem

_log = structlog.get_logger("tierroute.cert_reload")
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_VERSION = 0xA0

__all__ = ["ReloadingServerCredentials", "certificate_not_after"]


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: its tag, where its contents start and where they end."""
    tag = der[pos]
    length = der[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("truncated DER element")
    return tag, start, end


def _time(tag: int, text: str) -> float:
    if not text.endswith("Z"):
        raise ValueError("certificate time is not in UTC")
    if tag == _UTC_TIME:
        # RFC 5280 4.1.2.5.1: two-digit years 50-99 are 19xx, 00-49 are 20xx.
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError("not a certificate time")
    fields = (text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14])
    year, month, day, hour, minute, second = (int(f) for f in fields)
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def certificate_not_after(pem: bytes) -> float:
    """Expiry (``notAfter``, seconds since the epoch) of the first certificate in ``pem``."""
    begin = pem.find(_PEM_BEGIN)
    end = pem.find(_PEM_END, begin)
    if begin < 0 or end < 0:
        raise ValueError("no PEM certificate")
    der = base64.b64decode(b"".join(pem[begin + len(_PEM_BEGIN) : end].split()))
    # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    #   serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } ... }
    tag, start, _ = _element(der, 0)
    tag_tbs, pos, _ = _element(der, start)
    if tag != _SEQUENCE or tag_tbs != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    if der[pos] == _EXPLICIT_VERSION:
        pos = _element(der, pos)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _element(der, pos)[2]
    tag, validity, _ = _element(der, pos)
    if tag != _SEQUENCE:
        raise ValueError("no validity in the certificate")
    not_before_end = _element(der, validity)[2]
    tag, start, end = _element(der, not_before_end)
    return _time(tag, der[start:end].decode("ascii"))


_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(paths: tuple[Path, ...]) -> _Stamp:
    # stat follows the kubelet's ..data symlink, so an atomic swap changes the stamp.
    stats = [os.stat(path) for path in paths]
    return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)


@dataclass(frozen=True)
class _Loaded:
    stamp: _Stamp
    configuration: grpc.ServerCertificateConfiguration
    not_after: float


class ReloadingServerCredentials:
    """``server.tls`` as gRPC credentials that pick up rotated files on the next connection."""

    def __init__(self, tls: ServerTls) -> None:
        self._tls = tls
        paths = [tls.cert_file, tls.key_file]
        if tls.client_ca_file is not None:
            paths.append(tls.client_ca_file)
        self._paths = tuple(paths)
        # The fetcher runs on gRPC's own threads, one per new connection.
        self._lock = threading.Lock()
        self._current = self._load()  # the files at start: errors stop the service here
        self._failed: _Stamp | None = None
        self.reloads = 0

    def _load(self) -> _Loaded:
        stamp = _stamp(self._paths)
        tls = self._tls
        cert = read_pem(tls.cert_file, "server.tls.cert_file", "certificate")
        key = read_pem(tls.key_file, "server.tls.key_file", "key")
        client_ca = (
            read_pem(tls.client_ca_file, "server.tls.client_ca_file", "certificate")
            if tls.client_ca_file is not None
            else None
        )
        try:
            # Loads both and checks the key belongs to the certificate (a rotation that
            # replaced one file but not yet the other fails here, not in every handshake).
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"server.tls: certificate and key do not load together: {exc}"
            ) from exc
        if _stamp(self._paths) != stamp:
            raise ValueError("server.tls: the files changed while they were read")
        configuration = grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=client_ca
        )
        return _Loaded(stamp, configuration, certificate_not_after(cert))

    def credentials(self) -> grpc.ServerCredentials:
        """The gRPC server credentials (one object; it reloads by itself)."""
        return grpc.dynamic_ssl_server_credentials(
            self._current.configuration,
            # The stub omits the documented ``None`` ("no change") return of the fetcher.
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=self._tls.require_client_auth,
        )

    def not_after(self) -> float:
        """Expiry of the certificate being served (seconds since the epoch)."""
        return self._current.not_after

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each new connection's handshake; None keeps the current set.
        with self._lock:
            try:
                stamp = _stamp(self._paths)
            except OSError as exc:
                _log.warning("server.tls: keeping the current certificate", error=str(exc))
                return None
            if stamp in (self._current.stamp, self._failed):
                return None  # unchanged, or the same broken set as last time
            try:
                loaded = self._load()
            except (OSError, ValueError) as exc:
                # Mid-rotation (a file missing, a key that does not match yet): serve the old
                # set; the writer's next change gives a new stamp and another try.
                self._failed = stamp
                _log.warning("server.tls: keeping the current certificate", error=str(exc))
                return None
            self._current = loaded
            self._failed = None
            self.reloads += 1
        _log.info("server.tls: certificate reloaded", not_after=loaded.not_after)
        return loaded.configuration

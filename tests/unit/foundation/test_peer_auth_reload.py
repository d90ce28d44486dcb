"""Certificate expiry parsing, the reloading credentials' fetcher, SecretFile and SAN checks."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.tls_files import INTRUDER_DNS, ROUTER_DNS, ROUTER_URI, make_tls_files, reissue_server
from tierroute.cert_reload import ReloadingServerCredentials, certificate_not_after
from tierroute.config import ServerTls
from tierroute.errors import PermissionDeniedError, UnauthenticatedError
from tierroute.peer_auth import PeerSanInterceptor, SecretFile, digest


@pytest.mark.parametrize("days", [1, 400, 40 * 365])  # 40 years: GeneralizedTime after 2049
def test_certificate_expiry_matches_the_certificate(tmp_path: Path, days: int) -> None:
    files = make_tls_files(tmp_path)
    cert = reissue_server(files, dt.timedelta(days=days))
    expected = cert.not_valid_after_utc.timestamp()
    assert certificate_not_after(files.server_cert.read_bytes()) == expected
    # A bundle: the first certificate counts.
    bundle = files.server_cert.read_bytes() + files.ca.read_bytes()
    assert certificate_not_after(bundle) == expected


def test_certificate_expiry_refuses_what_is_not_a_certificate(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    with pytest.raises(ValueError):
        certificate_not_after(files.server_key.read_bytes())


def test_fetcher_returns_a_new_configuration_only_when_the_files_change(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    reloading = ReloadingServerCredentials(
        ServerTls(cert_file=files.server_cert, key_file=files.server_key)
    )
    assert reloading._fetch() is None
    old_key = files.server_key.read_bytes()
    cert = reissue_server(files, dt.timedelta(days=9))
    new_key = files.server_key.read_bytes()
    files.server_key.write_bytes(old_key)  # mismatched pair: not served, tried once
    assert reloading._fetch() is None
    assert reloading._fetch() is None
    assert reloading.reloads == 0
    files.server_key.write_bytes(new_key)
    assert reloading._fetch() is not None
    assert reloading.not_after() == cert.not_valid_after_utc.timestamp()
    assert reloading._fetch() is None
    files.server_cert.unlink()  # a missing file: keep serving what is loaded
    assert reloading._fetch() is None
    assert reloading.reloads == 1


def test_secret_file_follows_rotation_with_a_grace(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "secret"
    old, new = secrets.token_hex(20), secrets.token_hex(21)
    path.write_text(old + "\n")
    source = SecretFile(path, grace_seconds=10, clock=lambda: now[0])
    assert source.digests() == (digest(old),)
    assert source.secret() == old
    path.write_text(new)
    assert source.secret() == new
    assert source.digests() == (digest(new), digest(old))
    now[0] = 10.5
    assert source.digests() == (digest(new),)
    path.write_text("tiny")  # too short: the current secret stays
    assert source.digests() == (digest(new),)
    assert source.secret() == new
    assert source.reloads == 1


class _Context:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def _refusal(interceptor: PeerSanInterceptor, auth: dict[str, list[bytes]]) -> Any:
    return interceptor.refusal(_Context(auth))  # type: ignore[arg-type]


def test_san_check_accepts_a_pinned_dns_or_uri_and_explains_refusals() -> None:
    pin = PeerSanInterceptor([ROUTER_DNS, ROUTER_URI], open_services=())
    cert = {"x509_pem_cert": [b"..."]}
    assert _refusal(pin, {**cert, "peer_dns": [ROUTER_DNS.encode()]}) is None
    assert _refusal(pin, {**cert, "peer_uri": [ROUTER_URI.encode()]}) is None
    wrong = _refusal(pin, {**cert, "peer_dns": [INTRUDER_DNS.encode()]})
    assert isinstance(wrong, PermissionDeniedError) and INTRUDER_DNS in str(wrong)
    # A SAN of another type (an e-mail or a common name) equal to a pin does not count.
    sneaky = {**cert, "x509_common_name": [ROUTER_DNS.encode()], "peer_email": [b"x@y"]}
    assert isinstance(_refusal(pin, sneaky), PermissionDeniedError)
    assert isinstance(_refusal(pin, {}), UnauthenticatedError)
    with pytest.raises(ValueError):
        PeerSanInterceptor([], open_services=())


def test_a_bad_secret_file_is_read_once_per_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tierroute.peer_auth as peer_auth

    path = tmp_path / "secret"
    good = secrets.token_hex(20)
    path.write_text(good)
    source = SecretFile(path)
    reads: list[Path] = []
    real = peer_auth._read_secret

    def counted(p: Path) -> str:
        reads.append(p)
        return real(p)

    monkeypatch.setattr(peer_auth, "_read_secret", counted)
    path.write_text("short")
    for _ in range(5):
        assert source.digests() == (digest(good),)
    assert len(reads) == 1  # the broken version is not re-read (nor logged) on every call

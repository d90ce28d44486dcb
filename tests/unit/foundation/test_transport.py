"""TLS and shared-secret settings: checked at load, turned into gRPC credentials, never leaked."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from model_svc.config import ModelServiceSettings
from router_svc.config import RouterSettings
from tests.tls_files import TlsFiles, make_tls_files
from tierroute.config import ClientTls, ServerSettings, ServerTls, SharedSecret
from tierroute.transport import (
    SharedSecretInterceptor,
    bearer_metadata,
    channel_credentials,
    channel_options,
    server_credentials,
)

SECRET = "peer-secret-5b0c8e1f2a"  # a test value


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


def test_server_tls_builds_credentials(tls: TlsFiles) -> None:
    plain = ServerTls(cert_file=tls.server_cert, key_file=tls.server_key)
    assert isinstance(server_credentials(plain), grpc.ServerCredentials)
    mutual = ServerTls(
        cert_file=tls.server_cert,
        key_file=tls.server_key,
        client_ca_file=tls.ca,
        require_client_auth=True,
    )
    assert isinstance(server_credentials(mutual), grpc.ServerCredentials)


def test_missing_or_wrong_files_fail_at_load_naming_the_setting(
    tls: TlsFiles, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=r"server\.tls\.cert_file: cannot read .*missing"):
        ServerSettings(tls={"cert_file": tmp_path / "missing.pem", "key_file": tls.server_key})
    with pytest.raises(ValidationError, match=r"server\.tls\.cert_file: .* holds no PEM cert"):
        ServerTls(cert_file=tls.server_key, key_file=tls.server_key)  # a key, not a certificate
    with pytest.raises(ValidationError, match=r"server\.tls\.key_file: .* holds no PEM key"):
        ServerTls(cert_file=tls.server_cert, key_file=tls.server_cert)
    with pytest.raises(ValidationError, match="require_client_auth needs"):
        ServerTls(cert_file=tls.server_cert, key_file=tls.server_key, require_client_auth=True)
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_bytes(tls.server_cert.read_bytes())
    unreadable.chmod(0)
    try:
        if unreadable.exists() and not _readable(unreadable):
            with pytest.raises(ValidationError, match="Permission denied"):
                ServerTls(cert_file=unreadable, key_file=tls.server_key)
    finally:
        unreadable.chmod(0o600)


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True  # running as root: permissions do not stop reads


def test_client_tls_options(tls: TlsFiles) -> None:
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        ClientTls(ca_file=tls.ca, cert_file=tls.client_cert)
    mutual = ClientTls(
        ca_file=tls.ca, cert_file=tls.client_cert, key_file=tls.client_key, server_name="model"
    )
    assert isinstance(channel_credentials(mutual), grpc.ChannelCredentials)
    assert channel_options(mutual) == [("grpc.ssl_target_name_override", "model")]
    assert channel_options(ClientTls(ca_file=tls.ca)) == []
    assert channel_options(None) == []


def test_secret_from_file_or_environment_never_in_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "peer-secret"
    path.write_text(SECRET + "\n")
    from_file = SharedSecret(shared_secret_file=path)
    assert from_file.secret() == SECRET  # the trailing newline of `echo` is dropped

    monkeypatch.setenv("TIERROUTE_AUTH__MODE", "shared_secret")
    monkeypatch.setenv("TIERROUTE_AUTH__SHARED_SECRET", SECRET)
    settings = ModelServiceSettings.load(None)
    assert settings.auth.secret() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert bearer_metadata(SECRET) == (("authorization", f"Bearer {SECRET}"),)
    assert bearer_metadata(None) == ()


def test_bad_secrets_are_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        SharedSecret(shared_secret="short-one")
    assert "at least 16 characters" in str(info.value)
    assert "short-one" not in str(info.value)
    path = tmp_path / "s"
    path.write_text(SECRET)
    with pytest.raises(ValidationError, match="not both"):
        SharedSecret(shared_secret=SECRET, shared_secret_file=path)
    with pytest.raises(ValidationError, match="shared_secret_file: cannot read"):
        SharedSecret(shared_secret_file=tmp_path / "absent")


def test_model_service_auth_modes_need_their_material(tls: TlsFiles) -> None:
    with pytest.raises(ValidationError, match="mode shared_secret needs"):
        ModelServiceSettings(auth={"mode": "shared_secret"})
    with pytest.raises(ValidationError, match=r"mode mtls needs server\.tls"):
        ModelServiceSettings(auth={"mode": "mtls"})
    with pytest.raises(ValidationError, match="mode mtls needs"):
        ModelServiceSettings(
            auth={"mode": "mtls"},
            server={"tls": {"cert_file": tls.server_cert, "key_file": tls.server_key}},
        )
    ok = ModelServiceSettings(
        auth={"mode": "mtls"},
        server={
            "tls": {
                "cert_file": tls.server_cert,
                "key_file": tls.server_key,
                "client_ca_file": tls.ca,
                "require_client_auth": True,
            }
        },
    )
    assert ok.auth.mode == "mtls"
    assert "grpc.health.v1.Health" in ModelServiceSettings().auth.open_services


def test_router_tiers_inherit_tier_tls_and_tier_auth(tls: TlsFiles) -> None:
    def tier(name: str, price: float, **extra: object) -> dict[str, object]:
        return {
            "name": name,
            "endpoints": ["127.0.0.1:1"],
            "input_usd_per_mtok": price,
            "output_usd_per_mtok": price,
            **extra,
        }

    settings = RouterSettings(
        tiers=[tier("small", 0.1), tier("large", 1.0, tls={"enabled": False})],
        tier_tls={"ca_file": tls.ca, "cert_file": tls.client_cert, "key_file": tls.client_key},
        tier_auth={"shared_secret": SECRET},
        classifier={"enabled": False},
    )
    small, large = settings.tiers
    assert small.tls is not None and small.tls.cert_file == tls.client_cert
    assert large.tls is not None and not large.tls.enabled  # its own override wins
    assert small.auth is not None and small.auth.secret() == SECRET
    assert SECRET not in repr(settings)
    plain = RouterSettings(tiers=[tier("small", 0.1), tier("large", 1.0)])
    assert plain.tiers[0].tls is None
    assert plain.tiers[0].auth is not None and plain.tiers[0].auth.secret() is None


def test_interceptor_compares_the_bearer_secret() -> None:
    check = SharedSecretInterceptor(SECRET, ["grpc.health.v1.Health"])
    assert check.accepts((("authorization", f"Bearer {SECRET}"),))
    assert check.accepts((("x-request-id", "r"), ("authorization", f"bearer {SECRET}")))
    for metadata in (
        None,
        (),
        (("authorization", SECRET),),
        (("authorization", f"Basic {SECRET}"),),
        (("authorization", f"Bearer {SECRET}x"),),
        (("authorization", f"Bearer {SECRET[:-1]}"),),
        (("authorization", "Bearer "),),
    ):
        assert not check.accepts(metadata)

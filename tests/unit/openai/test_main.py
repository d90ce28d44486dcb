"""The command line of ``python -m openai_gateway``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from openai_gateway.__main__ import bind, load_settings, main, parse_args
from tests.tls_files import make_tls_files


def test_command_line_overrides_settings() -> None:
    settings = load_settings(parse_args(["--router", "r:1", "--port", "0", "--host", "::1"]))
    assert settings.router.target == "r:1"
    assert (settings.http.host, settings.http.port) == ("::1", 0)
    assert load_settings(parse_args([])).http.port == 8080


def test_bound_socket_is_tcp_so_asyncio_disables_nagle() -> None:
    # asyncio sets TCP_NODELAY only when proto is IPPROTO_TCP; without it every response
    # waited ~40 ms for a delayed ACK.
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0


def test_no_tls_flag_keeps_a_plaintext_channel() -> None:
    assert load_settings(parse_args(["--router", "r:1"])).router.tls is None


def test_tls_flags_build_the_router_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    args = ["--router-ca-file", str(files.ca), "--router-server-name", "tr-router.ns.svc"]
    args += [
        "--router-cert-file",
        str(files.client_cert),
        "--router-key-file",
        str(files.client_key),
    ]
    tls = load_settings(parse_args(args)).router.tls
    assert tls is not None and tls.enabled
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (
        files.ca,
        files.client_cert,
        files.client_key,
    )
    assert tls.server_name == "tr-router.ns.svc"
    # --router-tls alone: TLS with the system roots.
    bare = load_settings(parse_args(["--router-tls"])).router.tls
    assert bare is not None and bare.enabled and bare.ca_file is None


def test_tls_flags_override_the_file_field_by_field(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    config = tmp_path / "openai.yaml"
    config.write_text(
        yaml.safe_dump(
            {"router": {"tls": {"enabled": False, "ca_file": str(files.ca), "server_name": "a"}}}
        )
    )
    from_file = load_settings(parse_args(["--config", str(config)])).router.tls
    assert from_file is not None and not from_file.enabled
    tls = load_settings(
        parse_args(["--config", str(config), "--router-server-name", "b"])
    ).router.tls
    assert tls is not None and tls.enabled  # a flag turns TLS on
    assert (tls.ca_file, tls.server_name) == (files.ca, "b")


def test_router_tls_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_tls_files(tmp_path)
    monkeypatch.setenv("TIERROUTE_ROUTER__TLS__CA_FILE", str(files.ca))
    tls = load_settings(parse_args([])).router.tls
    assert tls is not None and tls.ca_file == files.ca


def test_unusable_tls_files_exit_2_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tls_files(tmp_path)
    assert main(["--router-ca-file", str(files.client_key)]) == 2
    assert "tls.ca_file" in capsys.readouterr().err
    assert main(["--router-key-file", str(files.client_key)]) == 2
    assert "cert_file and key_file go together" in capsys.readouterr().err

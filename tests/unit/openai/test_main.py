"""The command line of ``python -m router_svc.openai``."""

from __future__ import annotations

import socket

from router_svc.openai.__main__ import bind, load_settings, parse_args


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

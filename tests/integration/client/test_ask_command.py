"""``tierroute ask`` against a scripted router on a real gRPC server."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from tests.tls_files import make_tls_files
from tierroute_tools.commands.ask import _ask, client_tls

from .test_client import ScriptedRouter, router_server  # noqa: F401 - the fixture


def _args(port: int, prompt: str, **tls: object) -> argparse.Namespace:
    flags: dict[str, object] = {
        "tls": False,
        "ca_file": None,
        "cert_file": None,
        "key_file": None,
        "server_name": None,
    }
    return argparse.Namespace(
        router=f"127.0.0.1:{port}",
        max_tokens=16,
        mode=None,
        tier=None,
        timeout=5.0,
        prompt=prompt,
        **{**flags, **tls},
    )


def test_tls_flags_make_client_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    assert client_tls(_args(1, "q")) is None
    assert client_tls(_args(1, "q", tls=True)) is not None
    mutual = client_tls(
        _args(1, "q", ca_file=files.ca, cert_file=files.client_cert, key_file=files.client_key)
    )
    assert mutual is not None
    assert (mutual.ca_file, mutual.cert_file) == (files.ca, files.client_cert)
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        client_tls(_args(1, "q", cert_file=files.client_cert))


async def test_ask_prints_answer_and_routing_events(
    router_server: tuple[ScriptedRouter, int],  # noqa: F811
) -> None:
    servicer, port = router_server
    out, err = io.StringIO(), io.StringIO()
    await _ask(_args(port, "escalate"), "escalate", "k", out, err)
    assert out.getvalue() == "wrong right\n"
    log = err.getvalue()
    assert "[routed] tier=small reason=classifier" in log
    assert "[escalated] small -> large (low_confidence" in log
    assert "[finished] tier=large escalated=True" in log
    assert "saved=67%" in log
    assert servicer.metadata[0]["authorization"] == "Bearer k"

"""``tierroute ask`` against a scripted router on a real gRPC server."""

from __future__ import annotations

import argparse
import io

from tierroute.commands.ask import _ask

from .test_client import ScriptedRouter, router_server  # noqa: F401 - the fixture


def _args(port: int, prompt: str) -> argparse.Namespace:
    return argparse.Namespace(
        router=f"127.0.0.1:{port}", max_tokens=16, mode=None, tier=None, timeout=5.0, prompt=prompt
    )


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

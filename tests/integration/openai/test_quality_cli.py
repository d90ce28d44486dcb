"""``tierroute quality`` / ``tierroute feedback`` and the client's quality calls, against the
scripted RouterService of these tests on a real gRPC server."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from datetime import UTC, datetime

import grpc
import pytest

from tests.integration.openai.scripted_router import QUALITY, ScriptedRouter
from tierroute.client import Router, RouterError
from tierroute.v1 import router_service_pb2
from tierroute_tools.cli import main
from tierroute_tools.commands.quality import print_quality, verdict


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _cli(*argv: str) -> int:
    # The CLI runs its own event loop; the scripted router serves from this one.
    return await asyncio.to_thread(main, list(argv))


async def test_client_get_quality_and_submit_feedback(
    scripted: tuple[ScriptedRouter, int],
) -> None:
    servicer, port = scripted
    async with Router(f"127.0.0.1:{port}", api_key="good", timeout=5) as router:
        quality = await router.get_quality()
        assert quality == QUALITY
        stored = await router.submit_feedback("rid-1", 0.0, "useless")
        assert (stored.judge, stored.score, stored.acceptable) == ("feedback", 0.0, False)
        # A score of 0 is sent as a present field, not as "unset".
        assert servicer.feedback["rid-1"].HasField("score")
        with pytest.raises(RouterError) as caught:
            await router.submit_feedback("never-served", 1.0)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            await router.submit_feedback("rid-1", 2.0)


async def test_quality_prints_the_estimate_with_its_evidence(
    scripted: tuple[ScriptedRouter, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = scripted
    assert await _cli("quality", "--router", f"127.0.0.1:{port}") == 0
    out = capsys.readouterr().out
    assert "target 95.0%, intervals at 95% confidence" in out
    assert "HOLDS" in out
    lines = {line.split("  ")[1].strip(): line for line in out.splitlines() if line[:2] == "  "}
    assert "97.2%" in lines["all"] and "[95.1%, 98.8%]" in lines["all"] and "412" in lines["all"]
    # The small tier's lower bound is under the target: flagged on its row.
    assert lines["tier small"].endswith("< target")
    assert "0.612" in lines["small"] and "2026-01-01 00:00:00Z" in lines["small"]
    assert "savings net of shadow and judge costs: 48.0%" in out
    assert "agreement" in lines and "361" in lines["agreement"]


async def test_quality_json_is_the_response(
    scripted: tuple[ScriptedRouter, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = scripted
    assert await _cli("quality", "--router", f"127.0.0.1:{port}", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["overall"]["lower_bound"] == 0.951
    assert document["thresholds"][0]["last_change_time"] == "2026-01-01T00:00:00Z"
    assert document["routes"][0]["samples"] == "0"  # uint64 travels as a JSON string
    assert document["judges"][1]["cost_usd"] == 0.0  # zero values are printed too


async def test_quality_against_no_router_is_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"127.0.0.1:{_free_port()}"
    assert await _cli("quality", "--router", address, "--timeout", "3") == 2
    err = capsys.readouterr().err
    assert f"cannot reach the router at {address}" in err


async def test_feedback_command_records_and_reports_refusals(
    scripted: tuple[ScriptedRouter, int], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, port = scripted
    router = f"127.0.0.1:{port}"
    key = ("--api-key", "good")
    assert await _cli("feedback", "--router", router, *key, "rid-1", "0.9", "--comment", "ok") == 0
    out = capsys.readouterr().out
    assert "judge=feedback score=0.9 acceptable" in out
    assert servicer.feedback["rid-1"].comment == "ok"
    assert await _cli("feedback", "--router", router, *key, "never-served", "1") == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        await _cli("feedback", "--router", router, "rid-1", "1.5")
    assert exited.value.code == 2


def test_verdict_and_table_without_evidence_or_loop() -> None:
    empty = router_service_pb2.GetQualityResponse(enabled=True, target=0.95)
    assert verdict(empty).startswith("no judged samples")
    missed = router_service_pb2.GetQualityResponse()
    missed.CopyFrom(QUALITY)
    missed.overall.upper_bound = 0.94
    missed.overall.lower_bound = 0.90
    assert verdict(missed).startswith("MISSED")
    missed.overall.upper_bound = 0.97
    assert verdict(missed).startswith("NOT SHOWN")
    out = io.StringIO()
    print_quality(router_service_pb2.GetQualityResponse(), out, datetime.now(UTC))
    assert "quality loop is off" in out.getvalue()
    out = io.StringIO()
    print_quality(empty, out, datetime.now(UTC))
    assert "all" in out.getvalue() and "never" in out.getvalue()

"""``python -m openai_gateway`` as its own process: port 0, readiness, a request, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import httpx

from tests.integration.openai.scripted_router import ScriptedRouter


async def test_module_serves_and_stops_on_sigterm(scripted: tuple[ScriptedRouter, int]) -> None:
    _, router_port = scripted
    env = {**os.environ, "TIERROUTE_LOGGING__LEVEL": "INFO"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openai_gateway",
        "--router",
        f"127.0.0.1:{router_port}",
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    try:
        port = 0
        async with asyncio.timeout(30):
            while not port:
                line = await process.stderr.readline()
                assert line, "the endpoint exited before serving"
                if line.startswith(b"{"):
                    record = json.loads(line)
                    if record.get("event") == "serving":
                        port = int(record["port"])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(100):
                try:
                    ready = await http.get("/readyz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert ready.status_code == 200 and ready.json()["status"] == "ok"
            reply = await http.post(
                "/v1/chat/completions",
                json={"model": "tierroute-auto", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": "Bearer good"},
            )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "Hello there"
        assert reply.headers["x-tierroute-tier"] == "small"
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
    assert code == 0

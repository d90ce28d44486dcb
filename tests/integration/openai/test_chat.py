"""Chat and text completions through the official ``openai`` client (scripted router)."""

from __future__ import annotations

import openai
import pytest

from tests.integration.openai.scripted_router import ScriptedRouter
from tierroute.v1 import common_pb2, router_service_pb2

R = router_service_pb2


async def test_chat_completion_with_usage_headers_and_facts(
    client: openai.AsyncOpenAI, scripted: tuple[ScriptedRouter, int]
) -> None:
    servicer, _ = scripted
    raw = await client.chat.completions.with_raw_response.create(
        model="tierroute-auto",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        max_tokens=12,
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["\n\n"],
        extra_headers={"x-request-id": "req-42"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id == "chatcmpl-req-42" and completion.model == "small"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 2)
    assert completion.usage.total_tokens == 9
    facts = (completion.model_extra or {})["tierroute"]
    assert facts["tier"] == "small" and facts["escalated"] is False
    assert facts["savings_usd"] == pytest.approx(0.0000375)
    assert raw.headers["x-tierroute-tier"] == "small"
    assert raw.headers["x-tierroute-escalated"] == "false"
    assert raw.headers["x-tierroute-cost-usd"] == "0.0000125"
    assert raw.headers["x-tierroute-savings-usd"] == "0.0000375"
    assert raw.headers["x-request-id"] == "req-42"

    sent = servicer.requests[-1]
    roles = [m.role for m in sent.prompt.chat.messages]
    assert roles == [common_pb2.ROLE_SYSTEM, common_pb2.ROLE_USER]
    assert sent.sampling.max_tokens == 12 and list(sent.sampling.stop) == ["\n\n"]
    assert sent.sampling.temperature == 0.5 and sent.sampling.top_p == pytest.approx(0.9)
    assert sent.sampling.seed == 7 and sent.request_id == "req-42"
    assert sent.options.fallback_mode == R.FALLBACK_MODE_BUFFERED
    assert sent.options.tier_hint == ""
    assert servicer.metadata[-1]["authorization"] == "Bearer good"


async def test_escalation_buffered_returns_only_the_final_answer(
    client: openai.AsyncOpenAI,
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="tierroute-auto", messages=[{"role": "user", "content": "escalate"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "right answer"
    assert completion.model == "large"
    facts = (completion.model_extra or {})["tierroute"]
    assert facts["escalated"] is True and facts["routed_tier"] == "small"
    assert facts["escalations"][0]["cause"] == "low_confidence"
    assert [u["discarded"] for u in facts["tier_usage"]] == [True, False]
    assert raw.headers["x-tierroute-tier"] == "large"
    assert raw.headers["x-tierroute-escalated"] == "true"


async def test_pinning_a_tier_by_model_name(
    client: openai.AsyncOpenAI, scripted: tuple[ScriptedRouter, int]
) -> None:
    servicer, _ = scripted
    completion = await client.chat.completions.create(
        model="large", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == "large"
    assert servicer.requests[-1].options.tier_hint == "large"


async def test_streaming_chat_with_usage_chunk(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="tierroute-auto",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-tierroute-tier"] == "small"
    chunks = [c async for c in raw.parse()]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert final.choices[0].finish_reason == "stop"
    assert (final.model_extra or {})["tierroute"]["cost_usd"] == pytest.approx(0.0000125)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert len({c.id for c in chunks}) == 1


async def test_streaming_buffered_escalation_shows_only_the_final_answer(
    client: openai.AsyncOpenAI,
) -> None:
    stream = await client.chat.completions.create(
        model="tierroute-auto", messages=[{"role": "user", "content": "escalate"}], stream=True
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "right answer"
    assert not any("escalation" in (c.model_extra or {}).get("tierroute", {}) for c in chunks)
    assert chunks[-1].usage is None  # no include_usage: OpenAI sends none


async def test_streaming_mode_signals_the_discard(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="tierroute-auto",
        messages=[{"role": "user", "content": "escalate"}],
        stream=True,
        extra_body={"tierroute": {"fallback_mode": "streaming"}},
    )
    answer: list[str] = []
    discards = 0
    async for chunk in stream:
        extra = (chunk.model_extra or {}).get("tierroute", {})
        if extra.get("discard_previous"):
            discards += 1
            assert extra["escalation"]["to_tier"] == "large"
            answer.clear()
        answer.extend(c.delta.content or "" for c in chunk.choices)
    assert discards == 1
    assert "".join(answer) == "right answer"


async def test_text_completion_and_length_finish(
    client: openai.AsyncOpenAI, scripted: tuple[ScriptedRouter, int]
) -> None:
    servicer, _ = scripted
    completion = await client.completions.create(model="small", prompt="long", max_tokens=3)
    assert completion.choices[0].text == "Hello there"
    assert completion.choices[0].finish_reason == "length"
    assert completion.object == "text_completion"
    assert completion.usage is not None and completion.usage.total_tokens == 9
    sent = servicer.requests[-1]
    assert sent.prompt.text == "long" and sent.sampling.max_tokens == 3


async def test_streaming_text_completion(client: openai.AsyncOpenAI) -> None:
    stream = await client.completions.create(
        model="tierroute-auto", prompt=["hi"], stream=True, extra_body={"tierroute": {}}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks) == "Hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_models_lists_auto_and_every_tier(client: openai.AsyncOpenAI) -> None:
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == ["tierroute-auto", "small", "large"]
    large = await client.models.retrieve("large")
    assert (large.model_extra or {})["tierroute"]["output_usd_per_mtok"] == 2.0
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-4")

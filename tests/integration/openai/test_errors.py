"""Every error mapping, seen through the official ``openai`` client and plain HTTP."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.integration.openai.scripted_router import Endpoint, ScriptedRouter

USER = [{"role": "user", "content": "hi"}]


async def _chat(client: openai.AsyncOpenAI, content: str, **kwargs: object) -> object:
    return await client.chat.completions.create(
        model="tierroute-auto",
        messages=[{"role": "user", "content": content}],
        **kwargs,
    )


async def test_router_invalid_argument_is_400_naming_the_parameter(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await _chat(client, "error:INVALID_ARGUMENT")
    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
    assert caught.value.code == "invalid_argument"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"stop": ["a"] * 9}, "stop"),
        ({"extra_body": {"tierroute": {"fallback_mode": "sometimes"}}}, "tierroute.fallback_mode"),
    ],
)
async def test_unsupported_or_invalid_fields_are_400(
    client: openai.AsyncOpenAI,
    scripted: tuple[ScriptedRouter, int],
    extra: dict[str, object],
    param: str,
) -> None:
    servicer, _ = scripted
    before = len(servicer.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        await _chat(client, "hi", **extra)
    assert caught.value.param == param
    assert len(servicer.requests) == before  # refused before reaching the router


async def test_unknown_api_key_is_401(endpoint: Endpoint) -> None:
    async with openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="bad", max_retries=0) as api:
        with pytest.raises(openai.AuthenticationError) as caught:
            await _chat(api, "hi")
        assert caught.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            await api.models.list()


async def test_pinning_without_permission_is_403(endpoint: Endpoint) -> None:
    async with openai.AsyncOpenAI(
        base_url=endpoint.base_url, api_key="limited", max_retries=0
    ) as api:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await api.chat.completions.create(model="large", messages=USER)
        assert caught.value.status_code == 403
        # The same key may still let the router choose.
        assert (await _chat(api, "hi")).choices[0].message.content == "Hello there"


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


async def test_overload_is_429_with_retry_after(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await _chat(client, "error:RESOURCE_EXHAUSTED")
    headers = caught.value.response.headers
    assert caught.value.status_code == 429
    assert headers["retry-after"] == "3" and headers["retry-after-ms"] == "2500"


async def test_no_tier_is_503(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await _chat(client, "error:UNAVAILABLE")
    assert caught.value.status_code == 503
    assert caught.value.body["message"] == "no tier can serve"


async def test_deadline_is_504_and_not_retried(
    client: openai.AsyncOpenAI, scripted: tuple[ScriptedRouter, int]
) -> None:
    servicer, _ = scripted
    with pytest.raises(openai.InternalServerError) as caught:
        await _chat(client, "error:DEADLINE_EXCEEDED")
    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-should-retry"] == "false"
    # The caller's own deadline travels to the router as the gRPC deadline.
    cancelled = servicer.cancelled
    with pytest.raises(openai.InternalServerError) as caught:
        await _chat(client, "slow", extra_headers={"x-tierroute-timeout-seconds": "0.3"})
    assert caught.value.status_code == 504
    for _ in range(50):
        if servicer.cancelled > cancelled:
            break
        await asyncio.sleep(0.05)
    assert servicer.cancelled == cancelled + 1


async def test_error_after_the_first_token_ends_the_stream_with_an_error_event(
    client: openai.AsyncOpenAI,
) -> None:
    stream = await _chat(client, "fail-mid", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen) == "Hello"
    assert "tier died mid-answer" in caught.value.message


async def test_error_before_the_first_token_keeps_its_status_when_streaming(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.RateLimitError):
        await _chat(client, "error:RESOURCE_EXHAUSTED", stream=True)


@pytest.mark.parametrize("stream", [False, True])
async def test_caller_hanging_up_cancels_the_router_stream(
    endpoint: Endpoint, scripted: tuple[ScriptedRouter, int], stream: bool
) -> None:
    servicer, _ = scripted
    cancelled = servicer.cancelled
    body = {"model": "tierroute-auto", "messages": [{"role": "user", "content": "slow"}]}
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(
                f"{endpoint.base_url}/chat/completions", json={**body, "stream": stream}
            )
    for _ in range(50):
        if servicer.cancelled > cancelled:
            break
        await asyncio.sleep(0.05)
    assert servicer.cancelled == cancelled + 1


async def test_plain_http_errors_use_the_openai_shape(endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(base_url=endpoint.base_url, timeout=5) as http:
        bad_json = await http.post("/chat/completions", content=b"{not json")
        missing = await http.get("/nothing-here")
        bad_timeout = await http.post(
            "/chat/completions",
            json={"model": "tierroute-auto", "messages": USER},
            headers={"x-tierroute-timeout-seconds": "-1"},
        )
        metrics = await http.get(f"http://127.0.0.1:{endpoint.port}/metrics")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    assert missing.status_code == 404 and "error" in missing.json()
    assert bad_timeout.status_code == 400
    assert 'tierroute_openai_requests_total{route="chat_completions",status="429"}' in metrics.text

"""The ModelService servicer on a real gRPC server (loopback, ephemeral port) over a fake engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from model_svc.config import ModelServiceSettings
from model_svc.server import SERVICE_NAME, ModelServer
from model_svc.servicer import CONFIDENCE_TRAILER, PROMPT_TOKENS_KEY
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc

from .fake_engine import ScriptedEngine, script

TIER = "small"


def settings(**limits: Any) -> ModelServiceSettings:
    return ModelServiceSettings(
        tier=TIER,
        server={"port": 0, "metrics_port": None, "grace_seconds": 2},
        engine={"health_interval_seconds": 0.05},
        limits={"max_concurrent_streams": 4, "max_tokens": 32, "default_max_tokens": 16, **limits},
    )


class Harness:
    """A running ModelServer plus a stub connected to it."""

    def __init__(self, server: ModelServer, engine: ScriptedEngine) -> None:
        self.server = server
        self.engine = engine
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.bootstrap.port}")
        self.stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def metric(self, name: str, **labels: str) -> float:
        value = self.server.registry.get_sample_value(name, {"tier": TIER, **labels})
        return 0.0 if value is None else value

    def requests(self, code: str) -> float:
        return self.metric("tierroute_model_requests_total", code=code)

    async def health_status(self) -> int:
        reply = await self.health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        return int(reply.status)


MakeHarness = Callable[..., Any]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    started: list[Harness] = []

    async def make(engine: ScriptedEngine | None = None, **limits: Any) -> Harness:
        engine = engine or ScriptedEngine()
        server = ModelServer(settings(**limits), engine)
        await server.bootstrap.start()
        harness = Harness(server, engine)
        started.append(harness)
        await server.warm_up()
        await server.bootstrap.set_serving(True)
        return harness

    yield make
    for harness in started:
        await harness.channel.close()
        await harness.server.bootstrap.stop()
        await harness.server.shutdown()


def text_request(text: str = "What is up?", **sampling: Any) -> model_service_pb2.GenerateRequest:
    return model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(text=text), sampling=common_pb2.SamplingParams(**sampling)
    )


def details(error: grpc.aio.AioRpcError) -> list[Any]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: list[Any] = []
    for any_detail in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if any_detail.Is(kind.DESCRIPTOR):
                detail = kind()
                any_detail.Unpack(detail)
                found.append(detail)
    return found


async def test_streams_deltas_then_finished_with_trailer(make_harness: MakeHarness) -> None:
    h = await make_harness()
    call = h.stub.Generate(text_request(), timeout=5)
    events = [event async for event in call]
    deltas = [e.delta for e in events[:-1]]
    finished = events[-1].finished
    assert all(e.HasField("delta") for e in events[:-1]) and events[-1].HasField("finished")
    assert "".join(d.text for d in deltas) == "Hello world."
    assert finished.finish_reason == common_pb2.FINISH_REASON_STOP
    assert finished.usage.prompt_tokens == 4  # one start token plus three words
    assert finished.usage.completion_tokens == sum(len(d.token_ids) for d in deltas) == 3
    assert 0 < finished.confidence.score <= 1
    assert finished.confidence.token_count == 3
    assert finished.confidence.method == common_pb2.CONFIDENCE_METHOD_LOGPROB_LOGISTIC
    assert all(0 < d.running_confidence <= 1 for d in deltas)
    assert deltas[-1].running_confidence == pytest.approx(finished.confidence.score)
    trailer = dict(await call.trailing_metadata())
    assert float(trailer[CONFIDENCE_TRAILER]) == pytest.approx(finished.confidence.score, abs=1e-6)
    assert h.requests("OK") == 1
    assert h.metric("tierroute_model_completion_tokens_total") == 3
    assert h.metric("tierroute_model_prompt_tokens_total") == 4
    assert h.metric("tierroute_model_confidence_count") == 1
    assert h.metric("tierroute_model_ttft_seconds_count") == 1
    assert h.metric("tierroute_model_active_streams") == 0


async def test_chat_prompt_and_max_tokens_reach_the_engine(make_harness: MakeHarness) -> None:
    h = await make_harness()
    chat = common_pb2.Chat(
        messages=[
            common_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, content="Be brief."),
            common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="Hi there"),
        ]
    )
    request = model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(chat=chat),
        sampling=common_pb2.SamplingParams(
            max_tokens=2, temperature=0.5, top_p=0.9, stop=["\n"], seed=7
        ),
    )
    events = [event async for event in h.stub.Generate(request, timeout=5)]
    assert events[-1].finished.finish_reason == common_pb2.FINISH_REASON_LENGTH
    assert events[-1].finished.usage.completion_tokens == 2
    sent = h.engine.requests[-1]
    assert (sent.max_tokens, sent.temperature, sent.top_p, sent.stop, sent.seed) == (
        2, 0.5, pytest.approx(0.9), ("\n",), 7,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (model_service_pb2.GenerateRequest(), "prompt"),
        (text_request(""), "prompt.text"),
        (text_request(max_tokens=33), "sampling.max_tokens"),
        (text_request(temperature=2.5), "sampling.temperature"),
        (text_request(temperature=-0.1), "sampling.temperature"),
        (text_request(top_p=0.0), "sampling.top_p"),
        (text_request(top_p=1.5), "sampling.top_p"),
        (text_request(stop=[""]), "sampling.stop[0]"),
        (text_request(stop=[str(i) for i in range(9)]), "sampling.stop"),
        (
            model_service_pb2.GenerateRequest(
                prompt=common_pb2.Prompt(
                    chat=common_pb2.Chat(messages=[common_pb2.ChatMessage(content="hi")])
                )
            ),
            "prompt.chat.messages[0].role",
        ),
        (
            model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(chat=common_pb2.Chat())),
            "prompt.chat.messages",
        ),
        (text_request(" ".join(["word"] * 63)), "prompt"),  # 64 tokens: no room in 64
        (
            model_service_pb2.GenerateRequest(
                prompt=common_pb2.Prompt(text="a"), request_id="x" * 129
            ),
            "request_id",
        ),
    ],
)
async def test_invalid_requests_name_the_field(
    make_harness: MakeHarness, request_: model_service_pb2.GenerateRequest, field: str
) -> None:
    h = await make_harness()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [event async for event in h.stub.Generate(request_, timeout=5)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad_request,) = details(caught.value)
    assert bad_request.field_violations[0].field == field
    assert h.requests("INVALID_ARGUMENT") == 1
    assert h.engine.requests[1:] == []  # nothing but the warm-up reached the engine


async def test_prompt_over_context_mentions_the_limit(make_harness: MakeHarness) -> None:
    h = await make_harness()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [e async for e in h.stub.Generate(text_request("w " * 100), timeout=5)]
    assert "context length of this model is 64 tokens" in (caught.value.details() or "")


async def test_prompt_over_the_token_limit_names_the_limit_and_the_count(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(max_prompt_tokens=8)
    # The fake engine renders one token per word plus one: 8 words are 9 tokens, 7 are 8.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [e async for e in h.stub.Generate(text_request("w " * 8), timeout=5)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = caught.value.details() or ""
    assert "is 9 tokens; the limit of this model service is 8 prompt tokens" in message
    (bad_request,) = details(caught.value)
    assert bad_request.field_violations[0].field == "prompt"
    assert h.engine.requests[1:] == []  # refused before generating
    assert h.metric("tierroute_model_prompt_tokens_total") == 0  # never processed
    events = [e async for e in h.stub.Generate(text_request("w " * 7), timeout=5)]
    assert events[-1].finished.usage.prompt_tokens == 8  # at the limit: served


async def test_completion_is_capped_by_the_remaining_context(make_harness: MakeHarness) -> None:
    h = await make_harness(ScriptedEngine(deltas=script(["x"] * 10)))
    # 60-token prompt in a 64-token context leaves room for 4 tokens.
    events = [e async for e in h.stub.Generate(text_request("w " * 59, max_tokens=10), timeout=5)]
    assert events[-1].finished.usage.completion_tokens == 4
    assert events[-1].finished.finish_reason == common_pb2.FINISH_REASON_LENGTH


async def test_overload_is_rejected_at_once_with_retry_info(make_harness: MakeHarness) -> None:
    h = await make_harness(ScriptedEngine(delay=0.2), max_concurrent_streams=2)
    busy = [h.stub.Generate(text_request(), timeout=10) for _ in range(2)]
    for call in busy:
        assert (await call.read()).HasField("delta")
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [e async for e in h.stub.Generate(text_request(), timeout=10)]
    assert time.monotonic() - started < 0.15  # immediately, not after a slot frees up
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    (retry,) = details(caught.value)
    assert retry.retry_delay.ToTimedelta().total_seconds() == pytest.approx(0.5)
    for call in busy:
        while (event := await call.read()) is not grpc.aio.EOF:
            last = event
        assert last.HasField("finished")
    assert h.requests("RESOURCE_EXHAUSTED") == 1
    assert h.requests("OK") == 2
    assert h.metric("tierroute_model_max_concurrent_streams") == 2


async def test_client_cancel_aborts_the_engine_request(make_harness: MakeHarness) -> None:
    h = await make_harness(ScriptedEngine(deltas=script(["x"] * 20), delay=0.05))
    call = h.stub.Generate(text_request(), timeout=10)
    assert (await call.read()).HasField("delta")
    call.cancel()
    await _eventually(lambda: h.requests("CANCELLED") == 1)
    assert h.engine.num_unfinished_requests() == 0
    assert len(h.engine.aborted) == 1
    assert h.metric("tierroute_model_active_streams") == 0
    assert h.metric("tierroute_model_engine_unfinished_requests") == 0


async def test_deadline_expiry_aborts_the_engine_request(make_harness: MakeHarness) -> None:
    h = await make_harness(ScriptedEngine(deltas=script(["x"] * 20), delay=0.1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [e async for e in h.stub.Generate(text_request(), timeout=0.35)]
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(lambda: h.requests("DEADLINE_EXCEEDED") == 1)
    assert h.engine.num_unfinished_requests() == 0
    assert len(h.engine.aborted) == 1


async def test_engine_death_mid_stream_is_unavailable_and_not_serving(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(ScriptedEngine(deltas=script(["x"] * 5)))
    assert await h.health_status() == health_pb2.HealthCheckResponse.SERVING
    h.engine.fail_after = 2
    call = h.stub.Generate(text_request(), timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for event in call:
            received.append(event)
    assert len(received) == 2
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    await _eventually(lambda: h.metric("tierroute_model_engine_up") == 0)
    assert await h.health_status() == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as again:
        _ = [e async for e in h.stub.Generate(text_request(), timeout=5)]
    assert again.value.code() == grpc.StatusCode.UNAVAILABLE
    assert h.requests("UNAVAILABLE") == 2


async def test_watchdog_notices_a_dead_engine_without_traffic(make_harness: MakeHarness) -> None:
    h = await make_harness()
    h.engine.alive = False
    await _eventually(lambda: h.metric("tierroute_model_engine_up") == 0)
    status = health_pb2.HealthCheckResponse.NOT_SERVING
    for _ in range(50):
        if await h.health_status() == status:
            break
        await asyncio.sleep(0.02)
    assert await h.health_status() == status


async def test_unexpected_engine_error_is_internal_with_a_generic_message(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(ScriptedEngine(failure=RuntimeError))
    h.engine.fail_after = 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [e async for e in h.stub.Generate(text_request(), timeout=5)]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "scripted" not in (caught.value.details() or "")
    assert h.requests("INTERNAL") == 1
    assert h.metric("tierroute_model_engine_up") == 1


async def test_get_model_info_answers_from_config_and_engine(make_harness: MakeHarness) -> None:
    h = await make_harness()
    info = await h.stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=5)
    assert (info.model_name, info.tier, info.engine) == ("scripted-model", TIER, "scripted 1.0")
    assert (info.input_usd_per_mtok, info.output_usd_per_mtok) == (0.05, 0.10)
    assert info.context_length_tokens == 64
    assert info.max_output_tokens == 32
    assert info.max_concurrent_streams == 4


async def test_warm_up_failure_keeps_the_service_not_serving() -> None:
    engine = ScriptedEngine(deltas=[])
    server = ModelServer(settings(), engine)
    with pytest.raises(RuntimeError, match="warm-up"):
        await server.warm_up()
    assert server.registry.get_sample_value("tierroute_model_engine_up", {"tier": TIER}) == 0
    # Its own registry carries the process collector (RSS, open fds).
    rss = server.registry.get_sample_value("process_resident_memory_bytes")
    assert rss is not None and rss > 0
    await server.shutdown()
    assert engine.shut_down


async def test_the_prompt_size_is_sent_before_the_first_token(make_harness: MakeHarness) -> None:
    """A caller that leaves before any token (or whose deadline passes) still learns what the
    prompt cost: the count is in the initial metadata, sent before the engine's first token."""
    h = await make_harness(ScriptedEngine(deltas=script(["x"] * 5), delay=1.0))
    call = h.stub.Generate(text_request(), timeout=10)
    started = time.monotonic()
    metadata = dict(await call.initial_metadata())
    assert time.monotonic() - started < 0.8  # well before the first token (1 s)
    assert metadata[PROMPT_TOKENS_KEY] == "4"
    call.cancel()
    await _eventually(lambda: h.requests("CANCELLED") == 1)
    assert h.metric("tierroute_model_prompt_tokens_total") == 4


async def test_a_refused_prompt_reports_no_size(make_harness: MakeHarness) -> None:
    h = await make_harness(max_prompt_tokens=2)
    call = h.stub.Generate(text_request("w " * 8), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        _ = [e async for e in call]
    assert PROMPT_TOKENS_KEY not in dict(await call.initial_metadata() or ())


async def _eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)

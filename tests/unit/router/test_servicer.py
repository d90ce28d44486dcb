"""RouterService over real gRPC in front of scripted fake model services (real gRPC, fake model)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2, status_pb2

from tests.unit.router.conftest import Stack
from tests.unit.router.fake_model import start_fake
from tests.unit.router.fakes import FakeClassifier
from tests.unit.router.routers import PRICES, router_settings
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb

Event = rpb.RouterServiceGenerateResponse
FORBIDDEN = "127.0.0.1:1"  # nothing listens on port 1


def request(
    text: str = "Tell me about Roman aqueducts.",
    mode: Any = rpb.FALLBACK_MODE_UNSPECIFIED,
    **options: Any,
) -> rpb.RouterServiceGenerateRequest:
    return rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=text),
        sampling=common_pb2.SamplingParams(max_tokens=16),
        options=rpb.RouteOptions(fallback_mode=mode, **options),
    )


async def collect(
    stub: Any, req: rpb.RouterServiceGenerateRequest, timeout: float = 10, **kwargs: Any
) -> list[Event]:
    return [event async for event in stub.Generate(req, timeout=timeout, **kwargs)]


def kinds(events: list[Event]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def text_of(events: list[Event]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


def bad_request_field(exc: grpc.aio.AioRpcError) -> str:
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return str(bad.field_violations[0].field)
    raise AssertionError("no BadRequest detail")


def expected_cost(tier: str, prompt: int, completion: int) -> float:
    price_in, price_out = PRICES[tier]
    return (prompt * price_in + completion * price_out) / 1e6


async def test_route_returns_the_decision_only(fresh: Stack) -> None:
    reply = await fresh.stub.Route(
        rpb.RouteRequest(prompt=common_pb2.Prompt(text="Tell me about Roman aqueducts.")),
        timeout=5,
    )
    decision = reply.decision
    assert (decision.tier, decision.reason) == ("small", "classifier")
    assert decision.classifier_score == pytest.approx(0.9)
    assert decision.decision_latency_ms > 0
    assert fresh.small.model.calls == []  # no generation

    code = await fresh.stub.Route(
        rpb.RouteRequest(prompt=common_pb2.Prompt(text="```python\nprint(1)\n```")), timeout=5
    )
    assert (code.decision.tier, code.decision.reason) == ("large", "rule:code_fence")
    assert not code.decision.HasField("classifier_score")


async def test_generate_confident_small_answer(fresh: Stack) -> None:
    call = fresh.stub.Generate(request(), timeout=10, metadata=(("x-request-id", "req-42"),))
    events = [event async for event in call]
    assert kinds(events) == ["routed"] + ["delta"] * 5 + ["finished"]
    assert ("x-request-id", "req-42") in tuple(await call.initial_metadata())
    assert events[0].routed.request_id == "req-42"
    assert text_of(events) == "Paris is the capital."
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated, finished.degraded) == ("small", False, False)
    assert finished.confidence.score == pytest.approx(0.9)
    assert finished.finish_reason == common_pb2.FINISH_REASON_STOP
    # The tier got the request id and the caller's remaining time as its deadline.
    (seen,) = fresh.small.model.calls
    assert seen.request_id == "req-42" and seen.request.request_id == "req-42"
    # gRPC rounds a deadline up on the wire (by a few percent at most) to compress the header.
    assert seen.time_remaining is not None and 8 < seen.time_remaining <= 10.25
    assert seen.request.sampling.max_tokens == 16


async def test_cost_in_finished_is_tokens_times_configured_prices(fresh: Stack) -> None:
    fresh.small.model.behaviour.prompt_tokens = 1234
    finished = (await collect(fresh.stub, request()))[-1].finished
    (usage,) = finished.tier_usage
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (1234, 5)
    assert finished.cost_usd == pytest.approx(expected_cost("small", 1234, 5))
    assert usage.cost_usd == pytest.approx(finished.cost_usd)
    assert finished.baseline_cost_usd == pytest.approx(expected_cost("large", 1234, 5))
    assert finished.savings_usd == pytest.approx(finished.baseline_cost_usd - finished.cost_usd)


async def test_buffered_escalation_streams_only_the_large_answer(fresh: Stack) -> None:
    fresh.small.model.behaviour.confidence = 0.2
    fresh.large.model.behaviour.words = ("Large", " answer")
    fresh.large.model.behaviour.prompt_tokens = 20
    events = await collect(fresh.stub, request(mode=rpb.FALLBACK_MODE_BUFFERED))
    assert kinds(events) == ["routed", "escalated", "delta", "delta", "finished"]
    escalated = events[1].escalated
    assert (escalated.from_tier, escalated.to_tier, escalated.discarded_tokens) == (
        "small",
        "large",
        0,
    )
    assert escalated.cause == rpb.ESCALATION_CAUSE_LOW_CONFIDENCE
    assert escalated.confidence_score == pytest.approx(0.2)
    assert text_of(events) == "Large answer"
    finished = events[-1].finished
    assert (finished.served_tier, finished.escalated) == ("large", True)
    wasted, served = finished.tier_usage
    assert (wasted.tier, wasted.discarded, served.tier, served.discarded) == (
        "small",
        True,
        "large",
        False,
    )
    assert finished.cost_usd == pytest.approx(
        expected_cost("small", 12, 5) + expected_cost("large", 20, 2)
    )
    assert finished.baseline_cost_usd == pytest.approx(expected_cost("large", 20, 2))
    assert finished.savings_usd == pytest.approx(-expected_cost("small", 12, 5))


async def test_streaming_escalation_forwards_then_discards(fresh: Stack) -> None:
    fresh.small.model.behaviour.confidence = 0.2
    events = await collect(fresh.stub, request(mode=rpb.FALLBACK_MODE_STREAMING))
    assert kinds(events) == ["routed"] + ["delta"] * 5 + ["escalated"] + ["delta"] * 5 + [
        "finished"
    ]
    assert events[6].escalated.discarded_tokens == 5


async def test_early_window_gives_up_early_and_cancels_the_small_call(fresh: Stack) -> None:
    fresh.small.model.behaviour.running = 0.1
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(40))
    fresh.small.model.behaviour.token_delay = 0.01
    events = await collect(
        fresh.stub,
        request(mode=rpb.FALLBACK_MODE_EARLY_WINDOW),
    )
    assert kinds(events)[:2] == ["routed", "escalated"]
    assert events[1].escalated.cause == rpb.ESCALATION_CAUSE_EARLY_WINDOW
    assert events[-1].finished.served_tier == "large"
    wasted = events[-1].finished.tier_usage[0]
    assert wasted.usage.completion_tokens == 16  # K, the configured window
    await _eventually(lambda: fresh.small.model.calls[0].cancelled)


async def test_override_of_the_threshold_and_disabled_mode(fresh: Stack) -> None:
    fresh.small.model.behaviour.confidence = 0.8
    high = await collect(fresh.stub, request(fallback_threshold=0.95))
    assert high[-1].finished.served_tier == "large"
    low = await collect(
        fresh.stub, request(mode=rpb.FALLBACK_MODE_DISABLED, fallback_threshold=0.95)
    )
    assert low[-1].finished.served_tier == "small"


async def test_tier_error_before_the_first_token_falls_back_after_retries(fresh: Stack) -> None:
    fresh.small.model.behaviour.fail_code = grpc.StatusCode.UNAVAILABLE
    events = await collect(fresh.stub, request())
    assert kinds(events)[:2] == ["routed", "escalated"]
    escalated = events[1].escalated
    assert escalated.cause == rpb.ESCALATION_CAUSE_TIER_ERROR
    assert "UNAVAILABLE" in escalated.reason
    assert events[-1].finished.served_tier == "large"
    assert len(fresh.small.model.calls) == 2  # one retry (resilience.retries=1), then fall back


async def test_non_transient_tier_error_is_not_retried(fresh: Stack) -> None:
    fresh.small.model.behaviour.fail_code = grpc.StatusCode.INTERNAL
    events = await collect(fresh.stub, request())
    assert events[-1].finished.served_tier == "large"
    assert len(fresh.small.model.calls) == 1


async def test_tier_error_after_the_first_token_is_a_clean_error(fresh: Stack) -> None:
    """In DISABLED mode (no retraction); STREAMING fails over (``test_servicer_spend.py``)."""
    fresh.small.model.behaviour.fail_code = grpc.StatusCode.INTERNAL
    fresh.small.model.behaviour.fail_after = 2
    received: list[Event] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for event in fresh.stub.Generate(
            request(mode=rpb.FALLBACK_MODE_DISABLED), timeout=10
        ):
            received.append(event)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "not retried" in (info.value.details() or "")
    assert kinds(received) == ["routed", "delta", "delta"]
    assert fresh.large.model.calls == []


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (rpb.RouterServiceGenerateRequest(), "prompt"),
        (request(text="   "), "prompt.text"),
        (
            rpb.RouterServiceGenerateRequest(
                prompt=common_pb2.Prompt(
                    chat=common_pb2.Chat(
                        messages=[
                            common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content="x")
                        ]
                    )
                )
            ),
            "prompt.chat.messages[0].role",
        ),
        (
            rpb.RouterServiceGenerateRequest(
                prompt=common_pb2.Prompt(text="hi"),
                sampling=common_pb2.SamplingParams(max_tokens=100_000),
            ),
            "sampling.max_tokens",
        ),
        (request(fallback_threshold=1.5), "options.fallback_threshold"),
        (request(tier_hint="gigantic"), "options.tier_hint"),
        (request(mode=42), "options.fallback_mode"),
    ],
)
async def test_invalid_requests_name_the_field(
    fresh: Stack, req: rpb.RouterServiceGenerateRequest, field: str
) -> None:
    call = fresh.stub.Generate(req, timeout=10, metadata=(("x-request-id", "bad-1"),))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(info.value) == field
    assert ("x-request-id", "bad-1") in tuple(await call.initial_metadata())
    assert fresh.small.model.calls == [] and fresh.large.model.calls == []


async def test_chat_routes_on_the_last_user_message(fresh: Stack) -> None:
    chat = common_pb2.Chat(
        messages=[
            common_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, content="Be brief."),
            common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="```code```"),
            common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content="ok"),
            common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="And what is 2+2?"),
        ]
    )
    req = rpb.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(chat=chat))
    events = await collect(fresh.stub, req)
    assert events[0].routed.decision.reason == "classifier"
    assert fresh.classifier.calls[-1] == "And what is 2+2?"
    assert fresh.small.model.calls[0].request.prompt.chat == chat  # the whole chat goes on


async def test_tier_hint_pins_the_tier(fresh: Stack) -> None:
    events = await collect(fresh.stub, request(tier_hint="large"))
    assert events[0].routed.decision.reason == "tier_hint"
    assert events[-1].finished.served_tier == "large"


async def test_worst_case_cost_above_max_cost_is_refused(fresh: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(fresh.stub, request(max_cost_usd=1e-9))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    ok = await collect(fresh.stub, request(max_cost_usd=1.0))
    assert ok[-1].finished.served_tier == "small"


async def test_cancelling_the_stream_cancels_the_tier_call(fresh: Stack) -> None:
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(200))
    fresh.small.model.behaviour.token_delay = 0.02
    call = fresh.stub.Generate(request(mode=rpb.FALLBACK_MODE_STREAMING), timeout=30)
    async for event in call:
        if event.WhichOneof("event") == "delta":
            break
    call.cancel()
    await _eventually(
        lambda: bool(fresh.small.model.calls) and fresh.small.model.calls[0].cancelled
    )
    assert fresh.small.model.active == 0
    registry = fresh.app.registry
    await _eventually(
        lambda: (
            registry.get_sample_value("tierroute_router_active_streams") == 0
            and (
                registry.get_sample_value(
                    "tierroute_router_requests_total", {"code": "CANCELLED", "served_tier": "none"}
                )
                or 0
            )
            >= 1
        )
    )


async def test_the_callers_deadline_reaches_the_tier_and_is_honoured(fresh: Stack) -> None:
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(200))
    fresh.small.model.behaviour.token_delay = 0.02
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(fresh.stub, request(mode=rpb.FALLBACK_MODE_STREAMING), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (seen,) = fresh.small.model.calls
    assert seen.time_remaining is not None and seen.time_remaining <= 0.55
    assert fresh.large.model.calls == []


async def test_list_tiers(fresh: Stack) -> None:
    reply = await fresh.stub.ListTiers(rpb.ListTiersRequest(), timeout=5)
    assert [(t.name, t.endpoints, t.healthy_endpoints) for t in reply.tiers] == [
        ("small", 1, 1),
        ("large", 1, 1),
    ]
    assert reply.tiers[1].output_usd_per_mtok == pytest.approx(PRICES["large"][1])


async def test_metrics_and_one_log_line_per_request(fresh: Stack) -> None:
    registry = fresh.app.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    ok_before = value("tierroute_router_requests_total", code="OK", served_tier="large")
    esc_before = value(
        "tierroute_router_escalations_total",
        from_tier="small",
        to_tier="large",
        cause="low_confidence",
    )
    cost_before = value("tierroute_router_cost_usd_total", tier="small")
    fresh.small.model.behaviour.confidence = 0.2
    with structlog.testing.capture_logs() as logs:
        finished = (await collect(fresh.stub, request(text="secret question?")))[-1].finished
    assert value("tierroute_router_requests_total", code="OK", served_tier="large") == ok_before + 1
    assert (
        value(
            "tierroute_router_escalations_total",
            from_tier="small",
            to_tier="large",
            cause="low_confidence",
        )
        == esc_before + 1
    )
    assert value("tierroute_router_cost_usd_total", tier="small") == pytest.approx(
        cost_before + finished.tier_usage[0].cost_usd
    )
    assert value("tierroute_router_decision_latency_seconds_count") > 0
    assert value("tierroute_router_ttft_seconds_count", tier="large") > 0
    done = [entry for entry in logs if entry["event"] == "request_done"]
    assert len(done) == 1
    line = done[0]
    assert line["tier_path"] == ["small", "large"]
    assert line["cost_usd"] == pytest.approx(finished.cost_usd)
    assert line["savings_usd"] == pytest.approx(finished.savings_usd)
    assert line["decision"]["reason"] == "classifier"
    assert "secret" not in repr(line)  # no prompt text unless logging.log_prompts


async def test_overload_is_resource_exhausted_with_retry_info(
    make_router: Callable[..., Any],
) -> None:
    fake = await start_fake("small")
    large = await start_fake("large")
    try:
        fake.model.behaviour.token_delay = 0.2
        settings = router_settings(
            {"small": [fake.target], "large": [large.target]},
            limits={"max_concurrent_streams": 1, "retry_after_seconds": 2.5},
        )
        _, stub = await make_router(settings)
        first = stub.Generate(request(), timeout=10)
        await first.read()  # Routed: the first stream holds the only slot
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(stub, request())
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
        assert retry.retry_delay.seconds == 2
        first.cancel()
    finally:
        await fake.server.stop(None)
        await large.server.stop(None)


async def test_largest_tier_down_degrades_and_opens_its_circuit(
    make_router: Callable[..., Any],
) -> None:
    small = await start_fake("small")
    try:
        settings = router_settings({"small": [small.target], "large": [FORBIDDEN]})
        app, stub = await make_router(settings)
        for _ in range(2):
            events = await collect(stub, request("```python\nprint(1)\n```"))
            assert events[0].routed.decision.tier == "large"
            finished = events[-1].finished
            assert (finished.served_tier, finished.degraded) == ("small", True)
            assert "large" in finished.degraded_reason
        # 2 requests x 2 attempts >= 3 consecutive failures: the circuit is open now.
        tiers = (await stub.ListTiers(rpb.ListTiersRequest(), timeout=5)).tiers
        assert [(t.name, t.healthy_endpoints) for t in tiers] == [("small", 1), ("large", 0)]
        assert (
            app.registry.get_sample_value(
                "tierroute_router_circuit_state", {"tier": "large", "endpoint": FORBIDDEN}
            )
            == 2
        )
        assert (
            app.registry.get_sample_value("tierroute_router_degraded_total", {"tier": "small"}) == 2
        )
    finally:
        await small.server.stop(None)


async def test_health_checks_drive_the_circuit(make_router: Callable[..., Any]) -> None:
    small = await start_fake("small")
    large = await start_fake("large")
    try:
        settings = router_settings({"small": [small.target], "large": [large.target]})
        app, stub = await make_router(settings)
        await large.set_serving(False)
        await app.tiers.check_health()
        tiers = (await stub.ListTiers(rpb.ListTiersRequest(), timeout=5)).tiers
        assert tiers[1].healthy_endpoints == 0
        events = await collect(stub, request(tier_hint="large"))
        assert events[-1].finished.served_tier == "small"  # not even tried: circuit open
        assert large.model.calls == []
        await large.set_serving(True)
        await app.tiers.check_health()
        events = await collect(stub, request(tier_hint="large"))
        assert events[-1].finished.served_tier == "large"  # half-open probe succeeded
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


async def test_replicas_are_balanced_round_robin(make_router: Callable[..., Any]) -> None:
    replicas = [await start_fake("small") for _ in range(2)]
    large = await start_fake("large")
    try:
        settings = router_settings({"small": [r.target for r in replicas], "large": [large.target]})
        _, stub = await make_router(settings, FakeClassifier(0.9))
        for _ in range(4):
            await collect(stub, request())
        assert [len(r.model.calls) for r in replicas] == [2, 2]
    finally:
        for server in [*replicas, large]:
            await server.server.stop(None)


async def test_tier_hints_can_be_forbidden(make_router: Callable[..., Any]) -> None:
    settings = router_settings(
        {"small": [FORBIDDEN], "large": [FORBIDDEN]}, policy={"allow_tier_hint": False}
    )
    _, stub = await make_router(settings)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request(tier_hint="large"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_tier_serving_is_unavailable(make_router: Callable[..., Any]) -> None:
    settings = router_settings({"small": [FORBIDDEN], "large": [FORBIDDEN]})
    _, stub = await make_router(settings)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no tier could serve" in (info.value.details() or "")


async def _eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_shadow_sampling_replays_on_the_largest_tier(make_router: Callable[..., Any]) -> None:
    small = await start_fake("small")
    large = await start_fake("large")
    try:
        large.model.behaviour.words = ("Paris", " is", " the", " capital", "!")
        settings = router_settings(
            {"small": [small.target], "large": [large.target]}, shadow={"sample_rate": 1.0}
        )
        app, stub = await make_router(settings, FakeClassifier(0.9))
        events = await collect(stub, request())
        assert events[-1].finished.served_tier == "small"
        assert [event for event in events if event.WhichOneof("event") == "escalated"] == []
        registry = app.registry
        await _eventually(
            lambda: (
                registry.get_sample_value(
                    "tierroute_router_shadow_requests_total", {"tier": "small"}
                )
                == 1
            )
        )
        (seen,) = large.model.calls
        assert seen.request_id == events[0].routed.request_id + ":shadow"
        agreement_sum = registry.get_sample_value("tierroute_router_shadow_agreement_sum")
        assert agreement_sum == pytest.approx(20 / 21)  # "...capital." vs "...capital!"
        assert registry.get_sample_value(
            "tierroute_router_shadow_cost_usd_total", {"tier": "large"}
        ) == pytest.approx(expected_cost("large", 12, 5))
        # Served by the largest tier already: nothing to compare.
        await collect(stub, request(tier_hint="large"))
        await asyncio.sleep(0.1)
        assert len(large.model.calls) == 2
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


async def test_dns_targets_resolve_like_a_headless_service(make_router: Callable[..., Any]) -> None:
    small = await start_fake("small")
    try:
        # dns:/// resolves every address of the name and balances them round-robin; localhost's
        # addresses that nothing listens on (::1 here) are skipped as not ready.
        target = f"dns:///localhost:{small.port}"
        settings = router_settings({"small": [target], "large": [FORBIDDEN]})
        _, stub = await make_router(settings)
        events = await collect(stub, request())
        assert events[-1].finished.served_tier == "small"
        assert len(small.model.calls) == 1
    finally:
        await small.server.stop(None)


async def test_an_open_circuit_is_rechecked_within_a_second(
    make_router: Callable[..., Any],
) -> None:
    small = await start_fake("small")
    large = await start_fake("large")
    try:
        await large.set_serving(False)  # e.g. still loading when the router starts
        settings = router_settings(
            {"small": [small.target], "large": [large.target]},
            resilience={"health_check_interval_seconds": 30, "retries": 0},
        )
        _, stub = await make_router(settings)  # starts the health loop: first round now

        async def healthy_large() -> int:
            tiers = (await stub.ListTiers(rpb.ListTiersRequest(), timeout=5)).tiers
            return int(tiers[1].healthy_endpoints)

        await _eventually_async(lambda: healthy_large(), 0)
        await large.set_serving(True)
        await _eventually_async(lambda: healthy_large(), 1, timeout=2.5)  # not 30 s
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


async def _eventually_async(
    read: Callable[[], Any], expected: object, timeout: float = 3.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r}, expected {expected!r}")
        await asyncio.sleep(0.05)


async def test_a_health_check_timing_out_counts_as_one_failure(
    make_router: Callable[..., Any],
) -> None:
    small = await start_fake("small")
    # A listener that accepts connections and never answers: every check times out.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        settings = router_settings(
            {"small": [small.target], "large": [f"127.0.0.1:{port}"]},
            resilience={
                "health_check_interval_seconds": 0,
                "health_check_timeout_seconds": 0.1,
                "circuit_failure_threshold": 3,
            },
        )
        app, stub = await make_router(settings)

        async def healthy_large() -> int:
            tiers = (await stub.ListTiers(rpb.ListTiersRequest(), timeout=5)).tiers
            return int(tiers[1].healthy_endpoints)

        for _ in range(2):
            await app.tiers.check_health()
            assert await healthy_large() == 1  # busy is not dead
        await app.tiers.check_health()
        assert await healthy_large() == 0
    finally:
        silent.close()
        await small.server.stop(None)


async def test_a_passed_deadline_is_counted_as_deadline_exceeded(fresh: Stack) -> None:
    # The caller's deadline passes mid-stream: grpc cancels the handler either way, and the
    # request must count as DEADLINE_EXCEEDED (the error alerts ignore CANCELLED).
    fresh.small.model.behaviour.words = tuple(f" w{i}" for i in range(200))
    fresh.small.model.behaviour.token_delay = 0.02
    registry = fresh.app.registry
    cancelled = {"code": "CANCELLED", "served_tier": "none"}
    cancelled_before = registry.get_sample_value("tierroute_router_requests_total", cancelled)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(fresh.stub, request(mode=rpb.FALLBACK_MODE_STREAMING), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(
        lambda: (
            registry.get_sample_value("tierroute_router_active_streams") == 0
            and (
                registry.get_sample_value(
                    "tierroute_router_requests_total",
                    {"code": "DEADLINE_EXCEEDED", "served_tier": "none"},
                )
                or 0
            )
            >= 1
        )
    )
    cancelled_after = registry.get_sample_value("tierroute_router_requests_total", cancelled)
    assert cancelled_after == cancelled_before


def test_router_exports_its_process_memory(fresh: Stack) -> None:
    # A leak shows on the router's own /metrics, not only on the container's.
    rss = fresh.app.registry.get_sample_value("process_resident_memory_bytes")
    assert rss is not None and rss > 10 * 2**20

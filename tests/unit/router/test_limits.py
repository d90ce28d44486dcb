"""Router limits: daily spend budgets per tenant, clear size messages, tier refusals passed on.

The budget tests inject the wall clock: a day ends at 00:00 UTC of the test's clock, not the
machine's. Model services are the scripted fakes over real gRPC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from router_svc.auth import hash_key
from router_svc.ledger import BudgetExhaustedError, DailySpend
from router_svc.state.memory import InProcessState
from tests.unit.router.fake_model import FakeServer, start_fake
from tests.unit.router.routers import router_settings
from tests.unit.router.test_servicer import bad_request_field, collect, request
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb

KEY = "tr-test-budget-19ab"  # a test value, not a secret
AUTH = (("authorization", f"Bearer {KEY}"),)
# The fake tiers' default answer: 12 prompt and 5 completion tokens; small costs 0.1 and 0.2
# USD per 1M tokens, so one answer costs 2.2e-6 USD.
ONE_ANSWER_USD = (12 * 0.1 + 5 * 0.2) / 1e6


class WallClock:
    """A UTC wall clock the test sets by hand."""

    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def details(exc: grpc.aio.AioRpcError) -> list[Any]:
    """The google.rpc details of an error, unpacked."""
    raw = dict(exc.trailing_metadata() or ())["grpc-status-details-bin"]
    found: list[Any] = []
    for packed in status_pb2.Status.FromString(raw).details:
        for kind in (error_details_pb2.QuotaFailure, error_details_pb2.RetryInfo):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                found.append(detail)
    return found


def test_daily_spend_counts_per_tenant_and_resets_at_utc_midnight() -> None:
    clock = WallClock(at("2025-03-01T23:59:00"))
    spend = DailySpend(clock)
    spend.charge("acme", 0.6)
    spend.charge("acme", 0.5)
    spend.charge("globex", 0.1)
    spend.charge("acme", 0.0)
    assert spend.spent("acme") == pytest.approx(1.1)
    spend.check("globex", 1.0)  # under its budget
    with pytest.raises(BudgetExhaustedError) as info:
        spend.check("acme", 1.0)
    error = info.value
    assert "daily budget of 1.000000 USD" in error.message
    assert "spent 1.100000 USD" in error.message
    assert "resets at 2025-03-02T00:00:00Z" in error.message
    assert error.retry_after_seconds == pytest.approx(60.0)
    clock.now += 61  # 00:00:01 the next day
    assert spend.spent("acme") == 0.0
    spend.check("acme", 1.0)


@pytest.fixture
async def tiers() -> AsyncIterator[tuple[FakeServer, FakeServer]]:
    small = await start_fake("small")
    large = await start_fake("large")
    yield small, large
    await small.server.stop(None)
    await large.server.stop(None)


def budget_settings(
    small: FakeServer, large: FakeServer, usd_per_day: float, **overrides: Any
) -> Any:
    key = {"tenant": "acme", "sha256": hash_key(KEY), "usd_per_day": usd_per_day}
    return router_settings(
        {"small": [small.target], "large": [large.target]},
        auth={"enabled": True, "keys": [key]},
        **overrides,
    )


async def test_budget_refuses_once_spent_before_any_tier_and_resets_next_day(
    make_router: Callable[..., Any], tiers: tuple[FakeServer, FakeServer]
) -> None:
    small, large = tiers
    # Room for one answer, and a little: the second answer is admitted (spend below the
    # budget) and takes the tenant over it; the third is refused.
    app, stub = await make_router(budget_settings(small, large, usd_per_day=1.5 * ONE_ANSWER_USD))
    clock = WallClock(at("2025-06-30T18:00:00"))
    app.gate.state = InProcessState(clock)
    for _ in range(2):
        events = await collect(stub, request(), metadata=AUTH)
        assert events[-1].finished.served_tier == "small"
    assert await app.gate.spent("acme") == pytest.approx(2 * ONE_ANSWER_USD)
    calls = len(small.model.calls) + len(large.model.calls)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request(), metadata=AUTH)
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    message = error.details() or ""
    assert "daily budget of 0.000003 USD" in message
    assert "resets at 2025-07-01T00:00:00Z" in message
    found = {type(d): d for d in details(error)}
    quota = found[error_details_pb2.QuotaFailure]
    assert quota.violations[0].subject == "tenant:acme"
    assert "resets at 2025-07-01T00:00:00Z" in quota.violations[0].description
    retry = found[error_details_pb2.RetryInfo]
    assert retry.retry_delay.seconds == 6 * 3600  # until midnight UTC on the test's clock
    assert len(small.model.calls) + len(large.model.calls) == calls  # no tier was called

    clock.now = at("2025-07-01T00:00:05").timestamp()
    events = await collect(stub, request(), metadata=AUTH)
    assert events[-1].finished.served_tier == "small"
    assert await app.gate.spent("acme") == pytest.approx(ONE_ANSWER_USD)


async def test_escalated_request_is_charged_its_real_cost(
    make_router: Callable[..., Any], tiers: tuple[FakeServer, FakeServer]
) -> None:
    small, large = tiers
    small.model.behaviour.confidence = 0.2  # below the 0.65 threshold: escalates
    app, stub = await make_router(budget_settings(small, large, usd_per_day=1.0))
    events = await collect(stub, request(), metadata=AUTH)
    finished = events[-1].finished
    assert finished.escalated and finished.served_tier == "large"
    discarded = [u for u in finished.tier_usage if u.discarded]
    assert [u.tier for u in discarded] == ["small"] and discarded[0].cost_usd > 0
    # The tenant pays what the caller was told: the large answer plus the discarded small one.
    assert await app.gate.spent("acme") == pytest.approx(finished.cost_usd)
    assert finished.cost_usd == pytest.approx(sum(u.cost_usd for u in finished.tier_usage))


async def test_size_limits_name_the_limit_and_the_value(
    make_router: Callable[..., Any], tiers: tuple[FakeServer, FakeServer]
) -> None:
    small, large = tiers
    settings = router_settings(
        {"small": [small.target], "large": [large.target]},
        limits={"max_prompt_bytes": 100, "max_tokens": 64},
    )
    _, stub = await make_router(settings)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request("é" * 75))  # 150 bytes in UTF-8
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_field(info.value) == "prompt"
    assert "is 150 bytes (UTF-8); the limit of this router is 100 bytes" in (
        info.value.details() or ""
    )
    too_long = rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="hello"),
        sampling=common_pb2.SamplingParams(max_tokens=100),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, too_long)
    assert bad_request_field(info.value) == "sampling.max_tokens"
    assert "must be at most 64 (0: server default); got 100" in (info.value.details() or "")
    assert small.model.calls == [] and large.model.calls == []


async def test_a_tier_refusing_the_request_is_passed_on_without_retry(
    make_router: Callable[..., Any], tiers: tuple[FakeServer, FakeServer]
) -> None:
    small, large = tiers
    small.model.behaviour.fail_code = grpc.StatusCode.INVALID_ARGUMENT
    _, stub = await make_router(router_settings({"small": [small.target], "large": [large.target]}))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(stub, request())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "refused by tier small: scripted INVALID_ARGUMENT" in (info.value.details() or "")
    assert len(small.model.calls) == 1  # not retried on another attempt
    assert large.model.calls == []  # nor escalated

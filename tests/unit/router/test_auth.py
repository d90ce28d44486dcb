"""API keys, permissions, token bucket and per-tenant stream limits (fake clock, fake model)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from pydantic import ValidationError

from router_svc.auth import (
    ApiKeySettings,
    AuthSettings,
    RequestedOptions,
    TenantGate,
    TokenBucket,
    hash_key,
    load_keys,
)
from router_svc.cascade import FallbackModeName
from router_svc.state.memory import InProcessState
from tests.unit.router.fake_model import start_fake
from tests.unit.router.routers import router_settings
from tests.unit.router.test_servicer import collect, request
from tierroute.errors import OverloadedError, PermissionDeniedError, UnauthenticatedError
from tierroute.v1 import router_service_pb2 as rpb

STREAMING = FallbackModeName.STREAMING
EARLY = FallbackModeName.EARLY_WINDOW


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def key(tenant: str, secret: str, **extra: Any) -> ApiKeySettings:
    return ApiKeySettings(tenant=tenant, sha256=hash_key(secret), **extra)


def test_keys_match_by_digest_and_anything_else_is_unauthenticated() -> None:
    gate = TenantGate([key("acme", "k-acme"), key("globex", "k-globex")])
    assert gate.authenticate("Bearer k-acme").name == "acme"
    assert gate.authenticate("bearer k-globex").name == "globex"
    for header in (None, "", "k-acme", "Basic k-acme", "Bearer ", "Bearer k-acmeX"):
        with pytest.raises(UnauthenticatedError) as info:
            gate.authenticate(header)
        assert "k-acme" not in str(info.value)  # the key never appears in the error


def test_upper_case_digests_are_accepted_and_bad_ones_refused() -> None:
    gate = TenantGate([ApiKeySettings(tenant="acme", sha256=hash_key("k").upper())])
    assert gate.authenticate("Bearer k").name == "acme"
    with pytest.raises(ValidationError):
        ApiKeySettings(tenant="acme", sha256="not-hex")
    with pytest.raises(ValidationError):
        AuthSettings(enabled=True)  # no keys at all


def test_keys_file_adds_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": [{"tenant": "fromfile", "sha256": hash_key("f")}]}))
    settings = AuthSettings(enabled=True, keys=[key("inline", "i")], keys_file=path)
    gate = TenantGate(load_keys(settings))
    assert gate.authenticate("Bearer f").name == "fromfile"
    assert gate.authenticate("Bearer i").name == "inline"


def test_permissions_name_the_forbidden_option() -> None:
    gate = TenantGate([key("plain", "p"), key("power", "q", permissions={"pin_tier": True})])
    plain = gate.authenticate("Bearer p")
    plain.check_options(RequestedOptions())
    with pytest.raises(PermissionDeniedError, match=r"options\.tier_hint"):
        plain.check_options(RequestedOptions("large"))
    with pytest.raises(PermissionDeniedError, match=r"options\.fallback_mode"):
        plain.check_options(RequestedOptions(mode=STREAMING))
    power = gate.authenticate("Bearer q")
    power.check_options(RequestedOptions("large"))
    with pytest.raises(PermissionDeniedError, match="STREAMING"):
        power.check_options(RequestedOptions(mode=STREAMING))


def test_early_window_is_a_permission_like_streaming() -> None:
    gate = TenantGate([key("plain", "p"), key("early", "e", permissions={"early_window": True})])
    with pytest.raises(PermissionDeniedError, match=r"options\.fallback_mode.*EARLY_WINDOW"):
        gate.authenticate("Bearer p").check_options(RequestedOptions(mode=EARLY))
    early = gate.authenticate("Bearer e")
    early.check_options(RequestedOptions(mode=EARLY))
    with pytest.raises(PermissionDeniedError, match="STREAMING"):
        early.check_options(RequestedOptions(mode=STREAMING))  # one permission, not both


def test_fallback_threshold_is_bounded_per_tenant() -> None:
    gate = TenantGate(
        [key("plain", "p"), key("loose", "l", permissions={"max_fallback_threshold": 0.9})]
    )
    plain, loose = gate.authenticate("Bearer p"), gate.authenticate("Bearer l")
    # Unset: the router's own threshold is the bound (the gate's default); lower is allowed.
    plain.check_options(RequestedOptions(fallback_threshold=0.2), default_max_threshold=0.65)
    plain.check_options(RequestedOptions(fallback_threshold=0.65), default_max_threshold=0.65)
    with pytest.raises(PermissionDeniedError) as info:
        plain.check_options(RequestedOptions(fallback_threshold=1.0), default_max_threshold=0.65)
    message = str(info.value)
    assert "options.fallback_threshold" in message and "0.65" in message and "plain" in message
    loose.check_options(RequestedOptions(fallback_threshold=0.9), default_max_threshold=0.65)
    with pytest.raises(PermissionDeniedError, match=r"bound of 0\.9 "):
        loose.check_options(RequestedOptions(fallback_threshold=0.95), default_max_threshold=0.65)
    with pytest.raises(ValidationError):
        key("x", "x", permissions={"max_fallback_threshold": 1.5})


async def test_the_router_refuses_early_window_and_a_high_threshold_without_permission(
    make_router: Callable[..., Any],
) -> None:
    """Every way to spend more is gated: before, EARLY_WINDOW and fallback_threshold=1.0 were
    served to a tenant with no permissions."""
    small = await start_fake("small")
    large = await start_fake("large")
    try:
        settings = router_settings(
            {"small": [small.target], "large": [large.target]},
            auth={
                "enabled": True,
                "keys": [
                    {"tenant": "plain", "sha256": hash_key("p")},
                    {
                        "tenant": "power",
                        "sha256": hash_key("q"),
                        "permissions": {"early_window": True, "max_fallback_threshold": 1.0},
                    },
                ],
            },
        )
        _, stub = await make_router(settings)
        plain = (("authorization", "Bearer p"),)
        power = (("authorization", "Bearer q"),)
        refused = (
            (request(mode=rpb.FALLBACK_MODE_EARLY_WINDOW), "EARLY_WINDOW"),
            (request(fallback_threshold=1.0), "options.fallback_threshold"),
        )
        for message, named in refused:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await collect(stub, message, metadata=plain)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert named in (info.value.details() or "")
        assert not small.model.calls and not large.model.calls  # refused before any tier
        events = await collect(stub, request(fallback_threshold=0.5), metadata=plain)
        assert events[-1].WhichOneof("event") == "finished"  # lowering the threshold is free
        for message, _ in refused:
            events = await collect(stub, message, metadata=power)
            assert events[-1].WhichOneof("event") == "finished"
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # next token in 1 / rate seconds
    clock.now += 0.2
    assert bucket.take() == pytest.approx(0.3)
    clock.now += 0.3
    assert bucket.take() == 0.0
    clock.now += 100  # refill is capped at the burst
    assert [bucket.take() for _ in range(4)][-1] == pytest.approx(0.5)


async def test_rate_limit_is_per_tenant_with_retry_delay() -> None:
    clock = FakeClock()
    gate = TenantGate(
        [key("a", "a", rate_per_second=1, burst=1), key("b", "b", rate_per_second=1, burst=1)],
        state=InProcessState(monotonic=clock),
    )
    a, b = gate.authenticate("Bearer a"), gate.authenticate("Bearer b")
    await gate.admit(a)
    with pytest.raises(OverloadedError) as info:
        await gate.admit(a)
    assert info.value.retry_after_seconds == pytest.approx(1.0)
    await gate.admit(b)  # another tenant's bucket is untouched
    clock.now += 1.0
    await gate.admit(a)


async def test_stream_limit_counts_and_releases() -> None:
    gate = TenantGate([key("a", "a", max_concurrent_streams=2)], retry_after_seconds=3)
    a = gate.authenticate("Bearer a")
    await gate.open_stream(a)
    second = await gate.open_stream(a)
    with pytest.raises(OverloadedError) as info:
        await gate.open_stream(a)
    assert info.value.retry_after_seconds == 3
    await gate.state.close_stream(second)
    await gate.state.close_stream(second)  # a second release does not free another slot
    await gate.open_stream(a)
    assert await gate.open_streams("a") == 2


async def test_streams_are_released_on_end_and_on_cancel(
    make_router: Callable[..., Any],
) -> None:
    small = await start_fake("small")
    large = await start_fake("large")
    try:
        small.model.behaviour.token_delay = 0.1
        settings = router_settings(
            {"small": [small.target], "large": [large.target]},
            auth={
                "enabled": True,
                "keys": [{"tenant": "acme", "sha256": hash_key("k"), "max_concurrent_streams": 1}],
            },
        )
        app, stub = await make_router(settings)
        auth = (("authorization", "Bearer k"),)
        events = await collect(stub, request(), metadata=auth)
        assert events[-1].WhichOneof("event") == "finished"
        assert isinstance(app.gate, TenantGate)
        assert await app.gate.open_streams("acme") == 0  # released at the end of the stream

        first = stub.Generate(request(), timeout=10, metadata=auth)
        await first.read()  # Routed: the stream holds the tenant's only slot
        assert await app.gate.open_streams("acme") == 1
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(stub, request(), metadata=auth)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        for _ in range(100):  # the server sees the cancellation asynchronously
            if await app.gate.open_streams("acme") == 0:
                break
            await asyncio.sleep(0.02)
        assert await app.gate.open_streams("acme") == 0  # released on cancel
        events = await collect(stub, request(), metadata=auth)
        assert events[-1].WhichOneof("event") == "finished"
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


async def test_spend_budget_is_per_key_setting_checked_by_the_gate() -> None:
    with pytest.raises(ValidationError):
        key("acme", "k", usd_per_day=0)  # a zero budget would refuse everything: unset it
    gate = TenantGate([key("capped", "c", usd_per_day=0.01), key("free", "f")])
    capped = gate.caller("Generate", "Bearer c", "")
    free = gate.caller("Generate", "Bearer f", "")
    for caller, cost in ((capped, 0.01), (free, 1000.0)):
        await caller.reserve(0.02)
        caller.charge(cost)
        await caller.close()
    assert await gate.spent("free") == pytest.approx(1000.0)
    await free.check_budget()  # no budget configured: never refused
    with pytest.raises(OverloadedError, match=r"daily budget of 0\.010000 USD"):
        await capped.check_budget()


async def test_a_reservation_holds_the_budget_until_settled_to_the_real_cost() -> None:
    gate = TenantGate([key("capped", "c", usd_per_day=1.0)])
    first, second = (gate.caller("Generate", "Bearer c", "") for _ in range(2))
    await first.reserve(1.0)  # the worst case takes the whole budget ...
    with pytest.raises(OverloadedError, match="daily budget"):
        await second.reserve(0.1)  # ... so a concurrent request cannot pass the same check
    first.charge(0.25)
    await first.close()  # settled to the real cost: the rest is free again
    await first.close()  # idempotent
    assert await gate.spent("capped") == pytest.approx(0.25)
    await second.reserve(0.1)
    await second.close()  # nothing charged: the reservation is released
    assert await gate.spent("capped") == pytest.approx(0.25)

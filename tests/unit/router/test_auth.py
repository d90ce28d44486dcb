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
    TenantGate,
    TokenBucket,
    hash_key,
    load_keys,
)
from tests.unit.router.fake_model import start_fake
from tests.unit.router.routers import router_settings
from tests.unit.router.test_servicer import collect, request
from tierroute.errors import OverloadedError, PermissionDeniedError, UnauthenticatedError


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
    plain.check_options("", streaming=False)
    with pytest.raises(PermissionDeniedError, match=r"options\.tier_hint"):
        plain.check_options("large", streaming=False)
    with pytest.raises(PermissionDeniedError, match=r"options\.fallback_mode"):
        plain.check_options("", streaming=True)
    power = gate.authenticate("Bearer q")
    power.check_options("large", streaming=False)
    with pytest.raises(PermissionDeniedError, match="STREAMING"):
        power.check_options("", streaming=True)


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


def test_rate_limit_is_per_tenant_with_retry_delay() -> None:
    clock = FakeClock()
    gate = TenantGate(
        [key("a", "a", rate_per_second=1, burst=1), key("b", "b", rate_per_second=1, burst=1)],
        clock=clock,
    )
    a, b = gate.authenticate("Bearer a"), gate.authenticate("Bearer b")
    gate.admit(a)
    with pytest.raises(OverloadedError) as info:
        gate.admit(a)
    assert info.value.retry_after_seconds == pytest.approx(1.0)
    gate.admit(b)  # another tenant's bucket is untouched
    clock.now += 1.0
    gate.admit(a)


def test_stream_limit_counts_and_releases() -> None:
    gate = TenantGate([key("a", "a", max_concurrent_streams=2)], retry_after_seconds=3)
    a = gate.authenticate("Bearer a")
    gate.open_stream(a)
    gate.open_stream(a)
    with pytest.raises(OverloadedError) as info:
        gate.open_stream(a)
    assert info.value.retry_after_seconds == 3
    gate.close_stream(a)
    gate.open_stream(a)
    assert gate.open_streams("a") == 2


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
        assert app.gate.open_streams("acme") == 0  # released at the end of the stream

        first = stub.Generate(request(), timeout=10, metadata=auth)
        await first.read()  # Routed: the stream holds the tenant's only slot
        assert app.gate.open_streams("acme") == 1
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(stub, request(), metadata=auth)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        for _ in range(100):  # the server sees the cancellation asynchronously
            if app.gate.open_streams("acme") == 0:
                break
            await asyncio.sleep(0.02)
        assert app.gate.open_streams("acme") == 0  # released on cancel
        events = await collect(stub, request(), metadata=auth)
        assert events[-1].WhichOneof("event") == "finished"
    finally:
        await small.server.stop(None)
        await large.server.stop(None)


def test_spend_budget_is_per_key_setting_checked_by_the_gate() -> None:
    with pytest.raises(ValidationError):
        key("acme", "k", usd_per_day=0)  # a zero budget would refuse everything: unset it
    gate = TenantGate([key("capped", "c", usd_per_day=0.01), key("free", "f")])
    capped, free = gate.authenticate("Bearer c"), gate.authenticate("Bearer f")
    gate.charge(capped, 0.01)
    gate.charge(free, 1000.0)
    gate.check_budget(free)  # no budget configured: never refused
    with pytest.raises(OverloadedError, match=r"daily budget of 0\.010000 USD"):
        gate.check_budget(capped)

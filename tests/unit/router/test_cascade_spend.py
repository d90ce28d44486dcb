"""The cascade's spending rules: mid-stream failover where the caller accepts retraction, the
request's cost cap across escalation, and the prompt tokens of calls that never finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from router_svc.cascade import (
    Cascade,
    CascadeEvent,
    CascadePlan,
    Chunk,
    Escalation,
    EscalationCauseName,
    FallbackModeName,
    Forward,
    Outcome,
    TierFailure,
    TierResult,
)
from router_svc.costs import SpendCap
from tests.unit.router.fakes import FakeTiers, TierScript
from tierroute.errors import TierrouteError, UnavailableError

TWO = ("small", "large")
THREE = ("small", "medium", "large")
B, S, E, D = (
    FallbackModeName.BUFFERED,
    FallbackModeName.STREAMING,
    FallbackModeName.EARLY_WINDOW,
    FallbackModeName.DISABLED,
)
# Worst case of one call per tier (US dollars) for the cap tests.
CALL_USD = {"small": 1.0, "medium": 3.0, "large": 10.0}


def plan(
    mode: FallbackModeName,
    tiers: tuple[str, ...] = TWO,
    start: int = 0,
    k: int = 1,
    cap: float | None = None,
) -> CascadePlan:
    return CascadePlan(
        tiers=tiers,
        start=start,
        mode=mode,
        threshold=0.65,
        early_window_tokens=k,
        spend_cap=None if cap is None else SpendCap(CALL_USD, cap),
    )


async def run(p: CascadePlan, tiers: FakeTiers) -> list[CascadeEvent]:
    return [event async for event in Cascade(p, tiers.open).run()]


def kept(events: list[CascadeEvent]) -> list[object]:
    """What the caller holds after applying every escalation's discard."""
    held: list[object] = []
    for event in events:
        if isinstance(event, Escalation):
            assert len(held) == event.discarded_tokens
            held = []
        elif isinstance(event, Forward):
            held.append(event.chunk.payload)
    return held


def outcome(events: list[CascadeEvent]) -> Outcome:
    last = events[-1]
    assert isinstance(last, Outcome)
    return last


# Mid-stream failover


@pytest.mark.parametrize("mode", [S, E])
async def test_a_tier_dying_after_tokens_reached_the_caller_escalates(
    mode: FallbackModeName,
) -> None:
    tiers = FakeTiers(
        {
            "small": TierScript(fail_code="UNAVAILABLE", fail_after=3),
            "large": TierScript(words=("x", "y")),
        }
    )
    events = await run(plan(mode), tiers)
    (esc,) = [e for e in events if isinstance(e, Escalation)]
    assert (esc.from_tier, esc.to_tier, esc.cause) == (
        "small",
        "large",
        EscalationCauseName.TIER_ERROR,
    )
    assert esc.discarded_tokens == 3
    assert "after 3 tokens reached the caller" in esc.reason and "UNAVAILABLE" in esc.reason
    assert kept(events) == ["large:x", "large:y"]
    result = outcome(events)
    assert (result.served_tier, result.escalated, result.degraded) == ("large", True, False)
    assert [(u.tier, u.completion_tokens, u.discarded) for u in result.usages] == [
        ("small", 3, True),
        ("large", 2, False),
    ]


async def test_disabled_mode_has_no_retraction_and_stays_unavailable() -> None:
    tiers = FakeTiers(
        {"small": TierScript(fail_code="INTERNAL", fail_after=2), "large": TierScript()}
    )
    with pytest.raises(UnavailableError, match=r"after 2 tokens reached the caller.*DISABLED"):
        await run(plan(D), tiers)
    assert tiers.opened == ["small"]


@pytest.mark.parametrize("mode", [S, E])
async def test_the_last_tier_dying_mid_stream_is_unavailable(mode: FallbackModeName) -> None:
    tiers = FakeTiers(
        {"small": TierScript(), "large": TierScript(fail_code="INTERNAL", fail_after=2)}
    )
    with pytest.raises(UnavailableError, match="no larger tier"):
        await run(plan(mode, start=1), tiers)
    assert tiers.opened == ["large"]


async def test_failover_then_a_dead_larger_tier_degrades_with_the_retraction_kept() -> None:
    """medium streamed 2 tokens and died, large is down: small serves, and the caller is told
    to discard medium's 2 tokens before small's answer."""
    tiers = FakeTiers(
        {
            "small": TierScript(words=("s",)),
            "medium": TierScript(fail_code="UNAVAILABLE", fail_after=2),
            "large": TierScript(fail_code="UNAVAILABLE"),
        }
    )
    events = await run(plan(S, THREE, start=1), tiers)
    assert kept(events) == ["small:s"]
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("small", True)
    assert tiers.opened == ["medium", "large", "small"]


async def test_failover_after_an_unconfident_answer_never_serves_a_retracted_one() -> None:
    """small answered unconfidently (streamed, then retracted when medium began); medium died
    mid-stream and large is down: small is asked again, never served from the retracted text."""
    tiers = FakeTiers(
        {
            "small": TierScript(words=("s",), confidence=0.2),
            "medium": TierScript(fail_code="UNAVAILABLE", fail_after=2),
            "large": TierScript(fail_code="UNAVAILABLE"),
        }
    )
    events = await run(plan(S, THREE), tiers)
    assert kept(events) == ["small:s"]
    assert outcome(events).served_tier == "small"
    assert tiers.opened == ["small", "medium", "large", "small"]


# The cost cap


async def test_escalation_stops_where_the_next_tier_would_break_the_cap() -> None:
    tiers = FakeTiers({"small": TierScript(confidence=0.2), "large": TierScript()})
    events = await run(plan(B, cap=5.0), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded, result.escalated) == ("small", True, False)
    assert "max_cost_usd" in result.degraded_reason and "large" in result.degraded_reason
    assert tiers.opened == ["small"]
    assert kept(events) == ["small:a", "small:b", "small:c", "small:d"]


async def test_the_cap_allows_each_tier_whose_worst_case_still_fits() -> None:
    scripts = {
        "small": TierScript(confidence=0.2),
        "medium": TierScript(confidence=0.2),
        "large": TierScript(),
    }
    tiers = FakeTiers(dict(scripts))
    result = outcome(await run(plan(S, THREE, cap=4.0), tiers))
    assert (result.served_tier, result.degraded) == ("medium", True)
    assert tiers.opened == ["small", "medium"]
    tiers = FakeTiers(dict(scripts))
    result = outcome(await run(plan(S, THREE, cap=14.0), tiers))
    assert (result.served_tier, result.degraded) == ("large", False)


async def test_a_confident_answer_under_the_cap_is_not_degraded() -> None:
    tiers = FakeTiers({"small": TierScript(), "large": TierScript()})
    result = outcome(await run(plan(E, cap=1.0), tiers))
    assert (result.served_tier, result.degraded, result.degraded_reason) == ("small", False, "")


async def test_a_tier_error_does_not_fall_back_past_the_cap() -> None:
    tiers = FakeTiers({"small": TierScript(fail_code="UNAVAILABLE"), "large": TierScript()})
    with pytest.raises(UnavailableError, match="max_cost_usd"):
        await run(plan(B, cap=5.0), tiers)
    assert tiers.opened == ["small"]


async def test_degrading_skips_smaller_tiers_the_cap_cannot_pay_for() -> None:
    tiers = FakeTiers(
        {"small": TierScript(), "medium": TierScript(), "large": TierScript(fail_code="INTERNAL")}
    )
    # large (10) + medium (3) fit 13.5; small (1) on top does not: medium serves.
    result = outcome(await run(plan(B, THREE, start=2, cap=13.5), tiers))
    assert (result.served_tier, result.degraded) == ("medium", True)
    # 11: medium does not fit after large's failure, small does.
    tiers = FakeTiers(
        {"small": TierScript(), "medium": TierScript(), "large": TierScript(fail_code="INTERNAL")}
    )
    result = outcome(await run(plan(B, THREE, start=2, cap=11.0), tiers))
    assert result.served_tier == "small"
    assert tiers.opened == ["large", "small"]


# Prompt tokens reported before the first token


def reporting_opener(
    cascade_box: list[Cascade[str, None]], tokens: int, fail: bool, delay: float = 0.0
) -> object:
    async def open_tier(tier: str) -> AsyncGenerator[Chunk[str] | TierResult[None], None]:
        cascade_box[0].record_prompt_tokens(tier, 200 if tier == "large" else 100)
        for i in range(tokens):
            if delay:
                await asyncio.sleep(delay)
            yield Chunk(f"{tier}:{i}", 1, 0.9)
        if fail:
            raise TierFailure(tier, "UNAVAILABLE", "scripted")
        yield TierResult(1, 100, tokens, 0.9, None)

    return open_tier


async def test_a_cancelled_call_pays_for_the_prompt_it_reported() -> None:
    box: list[Cascade[str, None]] = []
    cascade: Cascade[str, None] = Cascade(
        plan(S),
        reporting_opener(box, tokens=50, fail=False, delay=0.01),  # type: ignore[arg-type]
    )
    box.append(cascade)
    async for event in cascade.run():
        if isinstance(event, Forward):
            break  # the caller hangs up after its first token
    assert [(u.tier, u.prompt_tokens, u.completion_tokens) for u in cascade.usages()] == [
        ("small", 100, 1)
    ]


async def test_a_failed_call_pays_for_the_prompt_it_reported_even_without_tokens() -> None:
    box: list[Cascade[str, None]] = []
    cascade: Cascade[str, None] = Cascade(
        plan(B),
        reporting_opener(box, tokens=0, fail=True),  # type: ignore[arg-type]
    )
    box.append(cascade)
    with pytest.raises(TierrouteError):
        async for _ in cascade.run():
            pass
    # Both tiers prefilled the prompt and died before a token: both prompts are paid for.
    assert [(u.tier, u.prompt_tokens, u.completion_tokens) for u in cascade.usages()] == [
        ("small", 100, 0),
        ("large", 200, 0),
    ]

"""The cascade state machine against scripted fake tiers: every mode, every failure position."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_svc.cascade import (
    Cascade,
    CascadeEvent,
    CascadePlan,
    Escalation,
    EscalationCauseName,
    FallbackModeName,
    Forward,
    Outcome,
)
from router_svc.costs import SpendCap
from tests.unit.router.fakes import FakeTiers, TierScript
from tierroute.errors import InvalidArgumentError, TierrouteError, UnavailableError

TWO = ("small", "large")
THREE = ("small", "medium", "large")
B, S, E, D = (
    FallbackModeName.BUFFERED,
    FallbackModeName.STREAMING,
    FallbackModeName.EARLY_WINDOW,
    FallbackModeName.DISABLED,
)


def plan(
    mode: FallbackModeName, tiers: tuple[str, ...] = TWO, start: int = 0, k: int = 2
) -> CascadePlan:
    return CascadePlan(tiers=tiers, start=start, mode=mode, threshold=0.65, early_window_tokens=k)


async def run(p: CascadePlan, tiers: FakeTiers) -> list[CascadeEvent]:
    return [event async for event in Cascade(p, tiers.open).run()]


def forwarded(events: list[CascadeEvent]) -> list[object]:
    return [e.chunk.payload for e in events if isinstance(e, Forward)]


def escalations(events: list[CascadeEvent]) -> list[Escalation]:
    return [e for e in events if isinstance(e, Escalation)]


def outcome(events: list[CascadeEvent]) -> Outcome:
    last = events[-1]
    assert isinstance(last, Outcome)
    assert sum(isinstance(e, Outcome) for e in events) == 1
    return last


@pytest.mark.parametrize("mode", [B, S, E, D])
async def test_confident_small_tier_is_served_as_is(mode: FallbackModeName) -> None:
    tiers = FakeTiers({"small": TierScript(confidence=0.9), "large": TierScript()})
    events = await run(plan(mode), tiers)
    assert forwarded(events) == ["small:a", "small:b", "small:c", "small:d"]
    result = outcome(events)
    assert (result.served_tier, result.escalated, result.degraded) == ("small", False, False)
    assert tiers.opened == ["small"]
    assert [(u.tier, u.prompt_tokens, u.completion_tokens, u.discarded) for u in result.usages] == [
        ("small", 10, 4, False)
    ]


async def test_buffered_escalation_hides_the_discarded_answer() -> None:
    tiers = FakeTiers({"small": TierScript(confidence=0.3), "large": TierScript(words=("x", "y"))})
    events = await run(plan(B), tiers)
    assert forwarded(events) == ["large:x", "large:y"]
    (esc,) = escalations(events)
    assert (esc.from_tier, esc.to_tier, esc.cause, esc.discarded_tokens) == (
        "small",
        "large",
        EscalationCauseName.LOW_CONFIDENCE,
        0,
    )
    assert esc.confidence_score == pytest.approx(0.3)
    assert isinstance(events[0], Escalation)  # before any large token
    result = outcome(events)
    assert (result.served_tier, result.escalated) == ("large", True)
    assert [(u.tier, u.discarded) for u in result.usages] == [("small", True), ("large", False)]


async def test_streaming_escalation_tells_how_much_to_discard() -> None:
    tiers = FakeTiers({"small": TierScript(confidence=0.3), "large": TierScript(words=("x",))})
    events = await run(plan(S), tiers)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Forward"] * 4 + ["Escalation", "Forward", "Outcome"]
    assert escalations(events)[0].discarded_tokens == 4
    assert outcome(events).served_tier == "large"


async def test_early_window_gives_up_after_k_tokens_and_cancels_the_tier() -> None:
    small = TierScript(words=("a", "b", "c", "d", "e", "f"), running=(0.9, 0.2, 0.2, 0.2, 0.2, 0.2))
    tiers = FakeTiers({"small": small, "large": TierScript(words=("x",))})
    events = await run(plan(E, k=2), tiers)
    assert forwarded(events) == ["large:x"]
    (esc,) = escalations(events)
    assert esc.cause is EscalationCauseName.EARLY_WINDOW
    assert esc.confidence_score == pytest.approx(0.2)
    assert tiers.closed_early == ["small"]
    usage = outcome(events).usages[0]
    # 2 tokens seen before giving up; prompt tokens estimated from the large tier's count.
    assert (usage.tier, usage.completion_tokens, usage.prompt_tokens, usage.discarded) == (
        "small",
        2,
        10,
        True,
    )


async def test_early_window_passes_then_a_low_final_confidence_still_escalates() -> None:
    small = TierScript(words=("a", "b", "c"), running=(0.9, 0.9, 0.5), confidence=0.4)
    tiers = FakeTiers({"small": small, "large": TierScript(words=("x",))})
    events = await run(plan(E, k=2), tiers)
    assert forwarded(events) == ["small:a", "small:b", "small:c", "large:x"]
    (esc,) = escalations(events)
    assert (esc.cause, esc.discarded_tokens) == (EscalationCauseName.LOW_CONFIDENCE, 3)


async def test_early_window_holds_a_short_answer_like_buffered() -> None:
    tiers = FakeTiers(
        {"small": TierScript(words=("a",), confidence=0.1), "large": TierScript(words=("x",))}
    )
    events = await run(plan(E, k=5), tiers)
    assert forwarded(events) == ["large:x"]
    assert escalations(events)[0].cause is EscalationCauseName.LOW_CONFIDENCE


async def test_disabled_mode_keeps_an_unconfident_answer() -> None:
    tiers = FakeTiers({"small": TierScript(confidence=0.1), "large": TierScript()})
    events = await run(plan(D), tiers)
    assert outcome(events).served_tier == "small"
    assert tiers.opened == ["small"]


@pytest.mark.parametrize("mode", [B, S, E, D])
async def test_error_before_the_first_token_falls_back_to_the_next_tier(
    mode: FallbackModeName,
) -> None:
    tiers = FakeTiers(
        {"small": TierScript(fail_code="UNAVAILABLE"), "large": TierScript(words=("x",))}
    )
    events = await run(plan(mode), tiers)
    (esc,) = escalations(events)
    assert esc.cause is EscalationCauseName.TIER_ERROR
    assert "UNAVAILABLE" in esc.reason
    assert forwarded(events) == ["large:x"]
    result = outcome(events)
    assert (result.served_tier, result.escalated) == ("large", True)
    assert [(u.tier, u.completion_tokens) for u in result.usages] == [("small", 0), ("large", 1)]


async def test_error_after_tokens_reached_the_caller_is_a_clean_error() -> None:
    """Without a retraction contract (DISABLED); the retracting modes fail over instead
    (``test_cascade_spend.py``)."""
    tiers = FakeTiers(
        {"small": TierScript(fail_code="INTERNAL", fail_after=2), "large": TierScript()}
    )
    cascade = Cascade(plan(D), tiers.open)
    seen: list[CascadeEvent] = []
    with pytest.raises(UnavailableError, match="after 2 tokens reached the caller"):
        async for event in cascade.run():
            seen.append(event)
    assert forwarded(seen) == ["small:a", "small:b"]
    assert tiers.opened == ["small"]  # never retried elsewhere: that would duplicate text
    assert [(u.tier, u.completion_tokens) for u in cascade.usages()] == [("small", 2)]


async def test_error_while_tokens_are_still_held_falls_back() -> None:
    tiers = FakeTiers(
        {"small": TierScript(fail_code="INTERNAL", fail_after=3), "large": TierScript(words=("x",))}
    )
    events = await run(plan(B), tiers)
    assert forwarded(events) == ["large:x"]
    assert escalations(events)[0].cause is EscalationCauseName.TIER_ERROR


async def test_largest_tier_down_degrades_to_the_smaller_one_with_the_reason() -> None:
    tiers = FakeTiers(
        {"small": TierScript(words=("s",)), "large": TierScript(fail_code="UNAVAILABLE")}
    )
    events = await run(plan(B, start=1), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded, result.escalated) == ("small", True, False)
    assert "large" in result.degraded_reason and "UNAVAILABLE" in result.degraded_reason
    assert forwarded(events) == ["small:s"]
    assert escalations(events) == []


@pytest.mark.parametrize("mode", [B, S])
async def test_failed_escalation_serves_the_unconfident_answer_degraded(
    mode: FallbackModeName,
) -> None:
    tiers = FakeTiers(
        {"small": TierScript(confidence=0.2), "large": TierScript(fail_code="UNAVAILABLE")}
    )
    events = await run(plan(mode), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded, result.escalated) == ("small", True, False)
    assert escalations(events) == []  # the caller never heard of an escalation
    assert forwarded(events) == ["small:a", "small:b", "small:c", "small:d"]
    assert tiers.opened == ["small", "large"]


async def test_failed_escalation_after_an_early_exit_asks_the_small_tier_again() -> None:
    small = TierScript(words=("a", "b", "c"), running=(0.1, 0.1, 0.1), confidence=0.1)
    tiers = FakeTiers({"small": small, "large": TierScript(fail_code="UNAVAILABLE")})
    events = await run(plan(E, k=1), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("small", True)
    assert tiers.opened == ["small", "large", "small"]
    assert forwarded(events) == ["small:a", "small:b", "small:c"]


async def test_every_tier_down_is_unavailable_naming_each() -> None:
    tiers = FakeTiers(
        {"small": TierScript(fail_code="UNAVAILABLE"), "large": TierScript(fail_code="INTERNAL")}
    )
    with pytest.raises(UnavailableError, match=r"small: UNAVAILABLE.*large: INTERNAL"):
        await run(plan(B), tiers)


async def test_a_request_every_tier_rejects_is_invalid_naming_the_field() -> None:
    bad = TierScript(fail_code="INVALID_ARGUMENT", field="sampling.max_tokens")
    tiers = FakeTiers({"small": bad, "large": bad})
    with pytest.raises(InvalidArgumentError) as info:
        await run(plan(B), tiers)
    assert info.value.field == "sampling.max_tokens"


async def test_three_tiers_escalate_one_step_at_a_time() -> None:
    tiers = FakeTiers(
        {
            "small": TierScript(confidence=0.2),
            "medium": TierScript(confidence=0.5),
            "large": TierScript(words=("z",)),
        }
    )
    events = await run(plan(B, THREE), tiers)
    assert [(e.from_tier, e.to_tier) for e in escalations(events)] == [
        ("small", "medium"),
        ("medium", "large"),
    ]
    assert forwarded(events) == ["large:z"]
    assert [u.discarded for u in outcome(events).usages] == [True, True, False]


async def test_three_tiers_confident_middle_tier_serves() -> None:
    tiers = FakeTiers(
        {
            "small": TierScript(confidence=0.2),
            "medium": TierScript(words=("m",)),
            "large": TierScript(),
        }
    )
    events = await run(plan(B, THREE), tiers)
    assert outcome(events).served_tier == "medium"
    assert tiers.opened == ["small", "medium"]


async def test_three_tiers_failed_middle_tier_escalates_on() -> None:
    tiers = FakeTiers(
        {
            "small": TierScript(confidence=0.2),
            "medium": TierScript(fail_code="UNAVAILABLE"),
            "large": TierScript(words=("z",)),
        }
    )
    events = await run(plan(B, THREE), tiers)
    assert [(e.from_tier, e.to_tier, e.cause) for e in escalations(events)] == [
        ("small", "medium", EscalationCauseName.LOW_CONFIDENCE),
        ("medium", "large", EscalationCauseName.TIER_ERROR),
    ]
    assert outcome(events).served_tier == "large"


async def test_three_tiers_degrade_to_the_latest_unconfident_answer() -> None:
    tiers = FakeTiers(
        {
            "small": TierScript(confidence=0.2),
            "medium": TierScript(words=("m",), confidence=0.5),
            "large": TierScript(fail_code="UNAVAILABLE"),
        }
    )
    events = await run(plan(B, THREE), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("medium", True)
    # small -> medium happened and stands; medium -> large was never announced.
    assert [(e.from_tier, e.to_tier) for e in escalations(events)] == [("small", "medium")]
    assert forwarded(events) == ["medium:m"]


async def test_cancelling_the_caller_closes_a_slow_tier_stream() -> None:
    tiers = FakeTiers(
        {"small": TierScript(delay=0.05, words=tuple("abcdefghij")), "large": TierScript()}
    )
    got_first = asyncio.Event()

    async def consume() -> None:
        async for event in Cascade(plan(S), tiers.open).run():
            if isinstance(event, Forward):
                got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tiers.closed_early == ["small"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[CascadePlan, dict[str, TierScript]]:
    names = draw(st.sampled_from([TWO, THREE]))
    scripts = {}
    for name in names:
        words = tuple(f"{name}{i}" for i in range(draw(st.integers(0, 4))))
        fail = draw(st.sampled_from([None, None, "UNAVAILABLE", "INTERNAL"]))
        scripts[name] = TierScript(
            words=words,
            confidence=draw(st.floats(0, 1)),
            running=tuple(draw(st.floats(0, 1)) for _ in words),
            fail_code=fail,
            fail_after=draw(st.integers(0, len(words))),
        )
    p = CascadePlan(
        tiers=names,
        start=draw(st.integers(0, len(names) - 1)),
        mode=draw(st.sampled_from(list(FallbackModeName))),
        threshold=draw(st.floats(0, 1)),
        early_window_tokens=draw(st.integers(1, 3)),
        spend_cap=draw(
            st.one_of(
                st.none(),
                st.builds(
                    SpendCap,
                    st.just({"small": 1.0, "medium": 3.0, "large": 10.0}),
                    st.floats(0, 30),
                ),
            )
        ),
    )
    return p, scripts


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_caller_always_ends_up_with_exactly_the_served_answer(
    scenario: tuple[CascadePlan, dict[str, TierScript]],
) -> None:
    """Whatever fails where: after applying the discards, the caller holds the served tier's
    whole answer, once, or gets an error; an announced escalation is never undone."""
    p, scripts = scenario

    tiers = FakeTiers(scripts)

    async def go() -> tuple[list[CascadeEvent], BaseException | None]:
        events: list[CascadeEvent] = []
        try:
            async for event in Cascade(p, tiers.open).run():
                events.append(event)
        except TierrouteError as exc:
            return events, exc
        return events, None

    events, error = asyncio.run(go())
    cap = p.spend_cap
    if cap is not None and cap.allows([], p.tiers[p.start]):
        # The cap holds over every call made (the routed tier's alone is the servicer's check).
        assert cap.committed(tiers.opened) <= cap.limit_usd * (1 + 1e-9)
    kept: list[object] = []
    for event in events:
        if isinstance(event, Escalation):
            assert len(kept) == event.discarded_tokens
            kept = []
        elif isinstance(event, Forward):
            kept.append(event.chunk.payload)
    if error is not None:
        assert not any(isinstance(e, Outcome) for e in events)
        return
    result = outcome(events)
    served = scripts[result.served_tier]
    assert kept == [f"{result.served_tier}:{w}" for w in served.words]
    assert served.fail_code is None
    announced = escalations(events)
    if announced:
        assert announced[-1].to_tier == result.served_tier
    if not result.degraded and p.mode is not FallbackModeName.DISABLED:
        is_last = p.tiers.index(result.served_tier) == len(p.tiers) - 1
        assert is_last or served.confidence >= p.threshold


# An ordered chain of three tiers, as the code3 preset runs it: every mode that escalates must
# walk it one tier at a time, list every tier it tried, and stop at the last one.
CHAIN = ("tiny", "small", "large")
ESCALATING = [B, S, E]


def chain(**scripts: TierScript) -> FakeTiers:
    """Fake tiers of :data:`CHAIN`; unnamed tiers answer confidently."""
    return FakeTiers({name: scripts.get(name, TierScript()) for name in CHAIN})


def unsure(words: tuple[str, ...] = ("a", "b", "c", "d")) -> TierScript:
    """A tier whose running confidence passes the early window but whose final one is low."""
    return TierScript(words=words, running=(0.9,) * len(words), confidence=0.3)


def kept_text(events: list[CascadeEvent]) -> list[object]:
    """What the caller holds after applying every escalation's discard."""
    kept: list[object] = []
    for event in events:
        if isinstance(event, Escalation):
            assert len(kept) == event.discarded_tokens
            kept = []
        elif isinstance(event, Forward):
            kept.append(event.chunk.payload)
    return kept


def usage_rows(result: Outcome) -> list[tuple[str, int, int, bool]]:
    return [(u.tier, u.prompt_tokens, u.completion_tokens, u.discarded) for u in result.usages]


@pytest.mark.parametrize("mode", ESCALATING)
async def test_chain_unsure_tiny_and_small_ends_on_large(mode: FallbackModeName) -> None:
    tiers = chain(tiny=unsure(), small=unsure(("p", "q", "r")), large=TierScript(words=("z",)))
    events = await run(plan(mode, CHAIN, k=2), tiers)
    assert [(e.from_tier, e.to_tier, e.cause) for e in escalations(events)] == [
        ("tiny", "small", EscalationCauseName.LOW_CONFIDENCE),
        ("small", "large", EscalationCauseName.LOW_CONFIDENCE),
    ]
    assert kept_text(events) == ["large:z"]
    result = outcome(events)
    assert (result.served_tier, result.escalated, result.degraded) == ("large", True, False)
    assert usage_rows(result) == [
        ("tiny", 10, 4, True),
        ("small", 10, 3, True),
        ("large", 10, 1, False),
    ]
    assert tiers.opened == list(CHAIN)
    if mode is B:
        assert forwarded(events) == ["large:z"]  # the discarded answers never reached the caller
    else:
        # Streamed (past the window): the caller saw each answer and is told to drop it.
        assert [e.discarded_tokens for e in escalations(events)] == [4, 3]


@pytest.mark.parametrize("mode", ESCALATING)
async def test_chain_unsure_only_on_tiny_ends_on_small(mode: FallbackModeName) -> None:
    tiers = chain(tiny=unsure(), small=TierScript(words=("s",), confidence=0.8))
    events = await run(plan(mode, CHAIN, k=2), tiers)
    assert [(e.from_tier, e.to_tier) for e in escalations(events)] == [("tiny", "small")]
    assert kept_text(events) == ["small:s"]
    result = outcome(events)
    assert (result.served_tier, result.escalated) == ("small", True)
    assert usage_rows(result) == [("tiny", 10, 4, True), ("small", 10, 1, False)]
    assert tiers.opened == ["tiny", "small"]  # the large tier is never asked


async def test_chain_early_window_abandons_each_tier_after_k_tokens() -> None:
    low = TierScript(words=tuple("abcdef"), running=(0.2,) * 6)
    tiers = chain(tiny=low, small=low, large=TierScript(words=("z",)))
    events = await run(plan(E, CHAIN, k=2), tiers)
    assert [(e.from_tier, e.to_tier, e.cause) for e in escalations(events)] == [
        ("tiny", "small", EscalationCauseName.EARLY_WINDOW),
        ("small", "large", EscalationCauseName.EARLY_WINDOW),
    ]
    assert forwarded(events) == ["large:z"]
    assert tiers.closed_early == ["tiny", "small"]
    # Two tokens seen on each abandoned tier; prompt tokens estimated from the large tier's.
    assert usage_rows(outcome(events)) == [
        ("tiny", 10, 2, True),
        ("small", 10, 2, True),
        ("large", 10, 1, False),
    ]


@pytest.mark.parametrize("mode", ESCALATING)
async def test_chain_stops_at_the_last_tier_and_serves_it_unsure(mode: FallbackModeName) -> None:
    tiers = chain(tiny=unsure(), small=unsure(), large=unsure(("z",)))
    events = await run(plan(mode, CHAIN, k=2), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("large", False)
    assert result.result.confidence == pytest.approx(0.3)
    assert len(escalations(events)) == 2
    assert tiers.opened == list(CHAIN)  # no tier asked twice, nothing after the last
    assert kept_text(events) == ["large:z"]


@pytest.mark.parametrize("mode", ESCALATING)
async def test_chain_pinned_middle_tier_escalates_only_upward(mode: FallbackModeName) -> None:
    tiers = chain(small=unsure(), large=TierScript(words=("z",)))
    events = await run(plan(mode, CHAIN, start=1, k=2), tiers)
    assert [(e.from_tier, e.to_tier) for e in escalations(events)] == [("small", "large")]
    result = outcome(events)
    assert result.served_tier == "large"
    assert [(u.tier, u.discarded) for u in result.usages] == [("small", True), ("large", False)]
    assert "tiny" not in tiers.opened


async def test_chain_pinned_middle_tier_degrades_to_itself_not_below() -> None:
    tiers = chain(small=unsure(("s",)), large=TierScript(fail_code="UNAVAILABLE"))
    events = await run(plan(B, CHAIN, start=1), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("small", True)
    assert tiers.opened == ["small", "large"]
    assert forwarded(events) == ["small:s"]


@pytest.mark.parametrize("mode", ESCALATING)
async def test_chain_dead_middle_tier_is_skipped(mode: FallbackModeName) -> None:
    tiers = chain(tiny=unsure(), small=TierScript(fail_code="UNAVAILABLE"), large=TierScript())
    events = await run(plan(mode, CHAIN, k=2), tiers)
    assert [(e.from_tier, e.to_tier, e.cause) for e in escalations(events)] == [
        ("tiny", "small", EscalationCauseName.LOW_CONFIDENCE),
        ("small", "large", EscalationCauseName.TIER_ERROR),
    ]
    result = outcome(events)
    # A larger tier served, so the answer is not degraded (the proto's meaning of the flag).
    assert (result.served_tier, result.escalated, result.degraded) == ("large", True, False)
    assert usage_rows(result) == [
        ("tiny", 10, 4, True),
        ("small", 0, 0, True),  # refused before prefill: no tokens, listed all the same
        ("large", 10, 4, False),
    ]


async def test_chain_routed_to_a_dead_middle_tier_goes_up() -> None:
    tiers = chain(small=TierScript(fail_code="UNAVAILABLE"), large=TierScript(words=("z",)))
    events = await run(plan(B, CHAIN, start=1), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("large", False)
    assert tiers.opened == ["small", "large"]


async def test_chain_dead_middle_and_last_tiers_degrade_naming_both() -> None:
    tiers = chain(
        tiny=unsure(("t",)),
        small=TierScript(fail_code="UNAVAILABLE"),
        large=TierScript(fail_code="INTERNAL"),
    )
    events = await run(plan(B, CHAIN), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded, result.escalated) == ("tiny", True, False)
    assert "tier small unavailable (UNAVAILABLE" in result.degraded_reason
    assert "tier large unavailable (INTERNAL" in result.degraded_reason
    assert escalations(events) == []  # the caller never heard of escalations that fell through
    assert forwarded(events) == ["tiny:t"]


async def test_chain_last_tier_down_degrades_past_a_dead_middle_tier() -> None:
    tiers = chain(
        tiny=TierScript(words=("t",)),
        small=TierScript(fail_code="UNAVAILABLE"),
        large=TierScript(fail_code="UNAVAILABLE"),
    )
    events = await run(plan(B, CHAIN, start=2), tiers)
    result = outcome(events)
    assert (result.served_tier, result.degraded) == ("tiny", True)
    assert tiers.opened == ["large", "small", "tiny"]
    assert "small" in result.degraded_reason and "large" in result.degraded_reason

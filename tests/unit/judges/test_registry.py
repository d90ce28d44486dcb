"""Judge settings and selection: overrides by route and tenant, fallback chains, costs summed."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tierroute.judges import (
    AskResult,
    ChainJudge,
    JudgeCase,
    JudgeError,
    JudgeSettings,
    Verdict,
    build_judges,
)


async def yes(prompt: str) -> AskResult:
    """A largest tier that always says yes, at a cost."""
    return AskResult("Yes", math.log(0.9), cost_usd=0.002)


class Scripted:
    """A judge with a fixed verdict, counting its calls."""

    def __init__(self, name: str, verdict: Verdict) -> None:
        self.name = name
        self.verdict = verdict
        self.calls = 0

    async def judge(self, case: JudgeCase) -> Verdict:
        self.calls += 1
        return self.verdict


def test_selection_order_route_then_tenant_then_default() -> None:
    settings = JudgeSettings(
        default="agreement",
        routes={"code_fence": "code", "structured": "json_schema"},
        tenants={"acme": "llm", "globex": "code"},
    )
    registry = build_judges(settings, ask=yes)
    assert registry.chain("code_fence", "acme") == ("code", "llm")
    assert registry.chain("classifier", "acme") == ("llm",)
    assert registry.chain(None, "globex") == ("code", "llm")
    assert registry.chain("classifier", None) == ("agreement", "llm")
    assert registry.chain("structured", "nobody") == ("json_schema", "llm")
    assert registry.select("code_fence", "acme").name == "code>llm"


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="loop"):
        JudgeSettings(fallbacks={"agreement": "llm", "llm": "agreement"})
    with pytest.raises(ValidationError, match="llm_template"):
        JudgeSettings(llm_template="{question} {candidate}")
    with pytest.raises(ValidationError):
        JudgeSettings(default="nonsense")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        JudgeSettings(routes={"r": "feedback"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError):
        JudgeSettings(unknown_key=1)  # type: ignore[call-arg]


def test_llm_needs_something_to_ask_with() -> None:
    with pytest.raises(JudgeError, match="llm"):
        build_judges(JudgeSettings())  # agreement falls back to llm by default
    local = build_judges(JudgeSettings(fallbacks={}))
    assert local.chain(None, None) == ("agreement",)
    with pytest.raises(JudgeError):
        local.judge("llm")


async def test_undecided_falls_back_and_costs_add_up() -> None:
    registry = build_judges(JudgeSettings(), ask=yes)
    judge = registry.select("anything", None)
    # Prose has no canonical result: agreement cannot tell, the llm judge decides.
    prose = "It depends on the soil, the light and how often the plant is watered each week."
    verdict = await judge.judge(JudgeCase("how to grow basil?", "Water it.", prose))
    assert verdict.decided and verdict.acceptable and verdict.judge == "llm"
    assert verdict.cost_usd == pytest.approx(0.002)
    # A decided first judge: the llm judge is never asked, nothing is spent.
    number = await judge.judge(JudgeCase("2+2?", "5", "4"))
    assert number.decided and not number.acceptable and number.judge == "agreement"
    assert number.cost_usd == 0.0


async def test_chain_of_undecided_judges_stays_undecided() -> None:
    first = Scripted("a", Verdict(False, 0.5, "a", "cannot tell", cost_usd=0.1, decided=False))
    second = Scripted("b", Verdict(False, 0.5, "b", "nor I", cost_usd=0.2, decided=False))
    verdict = await ChainJudge([first, second]).judge(JudgeCase("q", "a"))
    assert not verdict.decided and verdict.cost_usd == pytest.approx(0.3)
    assert "cannot tell" in verdict.reason and "nor I" in verdict.reason
    assert (first.calls, second.calls) == (1, 1)


def test_verdict_bounds() -> None:
    with pytest.raises(ValueError):
        Verdict(True, 1.5, "x", "r")
    with pytest.raises(ValueError):
        Verdict(True, 1.0, "x", "r", cost_usd=-1.0)

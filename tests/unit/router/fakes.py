"""Scripted fakes for the router's unit tests: tier streams, classifier, rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from router_svc.cascade import Chunk, TierFailure, TierResult
from router_svc.rules import RuleMatch


@dataclass
class TierScript:
    """How one fake tier answers: tokens, confidences, failures and delays."""

    words: tuple[str, ...] = ("a", "b", "c", "d")
    confidence: float = 0.9
    running: tuple[float, ...] | None = None
    """Running confidence after each token (default: ``confidence`` throughout)."""
    fail_code: str | None = None
    fail_after: int = 0
    """Tokens streamed before failing with ``fail_code``."""
    delay: float = 0.0
    prompt_tokens: int = 10
    field: str | None = None


@dataclass
class FakeTiers:
    """An opener over scripted tiers that records what was opened and how it ended."""

    scripts: dict[str, TierScript]
    opened: list[str] = field(default_factory=list)
    closed_early: list[str] = field(default_factory=list)
    """Tiers whose stream was closed before it ended (cancelled)."""

    async def open(self, tier: str) -> AsyncGenerator[Chunk[str] | TierResult[None], None]:
        """The stream of ``tier`` as the cascade sees it."""
        self.opened.append(tier)
        script = self.scripts[tier]
        finished = False
        try:
            for i, word in enumerate(script.words):
                if script.fail_code is not None and i == script.fail_after:
                    raise TierFailure(tier, script.fail_code, "scripted failure", script.field)
                if script.delay:
                    await asyncio.sleep(script.delay)
                running = script.running[i] if script.running else script.confidence
                yield Chunk(payload=f"{tier}:{word}", tokens=1, running_confidence=running)
            if script.fail_code is not None:
                raise TierFailure(tier, script.fail_code, "scripted failure", script.field)
            finished = True
            yield TierResult(
                finish_reason=1,
                prompt_tokens=script.prompt_tokens,
                completion_tokens=len(script.words),
                confidence=script.confidence,
                detail=None,
            )
        finally:
            if not finished:
                self.closed_early.append(tier)


class FakeClassifier:
    """Returns a fixed score, or raises; counts calls."""

    def __init__(self, score: float = 0.9, error: Exception | None = None) -> None:
        self.value = score
        self.error = error
        self.calls: list[str] = []

    async def score(self, text: str) -> float:
        """The scripted score."""
        self.calls.append(text)
        if self.error is not None:
            raise self.error
        return self.value


class FakeRules:
    """Matches when a keyword is in the text."""

    def __init__(self, matches: dict[str, RuleMatch]) -> None:
        self._matches = matches

    @property
    def names(self) -> tuple[str, ...]:
        """Every rule name."""
        return tuple(m.name for m in self._matches.values())

    def evaluate(self, text: str) -> RuleMatch | None:
        """The first rule whose keyword occurs in ``text``."""
        for keyword, match in self._matches.items():
            if keyword in text:
                return match
        return None

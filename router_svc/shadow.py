"""Shadow sampling: replay a sample of cheaply served requests on the largest tier, off-path.

For calibration from a deployment's own traffic: a sampled request that a cheaper tier served
(confidently, without escalation or degradation) is sent again to the largest tier in the
background once the caller has its answer; the two answers' similarity (0..1, character-level
``difflib`` ratio) and the shadow's cost are exported. Off by default (``shadow.sample_rate``
0, and then the sampler never samples: the servicer always has one); bounded in flight, so
shadows never queue up behind real traffic.
"""

from __future__ import annotations

import asyncio
import difflib
import random
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog
from pydantic import Field

from router_svc.cascade import Chunk, TierResult
from router_svc.costs import Prices, token_cost
from router_svc.metrics import RouterMetrics
from tierroute.config import Section

_log = structlog.get_logger("router_svc.shadow")
# Longest text compared (characters): difflib is quadratic in the worst case.
MAX_COMPARED_CHARS = 4000


class ShadowSettings(Section):
    """Shadow sampling of served requests on the largest tier."""

    sample_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of requests served by a cheaper tier that are replayed on the largest tier."""
    max_in_flight: int = Field(default=4, ge=1)
    """Shadow requests running at once; a sample beyond it is dropped."""


class TextPayload(Protocol):
    """What the sampler reads of a tier's chunk (the router's: the tier's ``TokenDelta``)."""

    @property
    def text(self) -> str:
        """The chunk's text."""
        ...


ShadowOpener = Callable[[], AsyncIterator[Chunk[TextPayload] | TierResult[object]]]
"""Opens the shadow call on the largest tier."""


def agreement(served: str, shadow: str) -> float:
    """Similarity of two answers in [0, 1] (1: identical)."""
    if not served and not shadow:
        return 1.0
    return difflib.SequenceMatcher(
        None, served[:MAX_COMPARED_CHARS], shadow[:MAX_COMPARED_CHARS], autojunk=False
    ).ratio()


class ShadowSampler:
    """Decides which requests to shadow and runs the shadows in the background."""

    def __init__(
        self,
        settings: ShadowSettings,
        metrics: RouterMetrics,
        largest: str,
        prices: Prices,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._largest = largest
        self._prices = prices
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def wants(self) -> bool:
        """Whether to sample the next request (decided up front: only then is text kept)."""
        rate = self._settings.sample_rate
        return rate > 0 and self._rng.random() < rate

    def submit(self, served_tier: str, served_text: str, opener: ShadowOpener) -> bool:
        """Start a shadow of a request ``served_tier`` answered; False if dropped."""
        if served_tier == self._largest or len(self._tasks) >= self._settings.max_in_flight:
            return False
        task = asyncio.get_running_loop().create_task(self._run(served_tier, served_text, opener))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, served_tier: str, served_text: str, opener: ShadowOpener) -> None:
        parts: list[str] = []
        result: TierResult[object] | None = None
        try:
            async for item in opener():
                if isinstance(item, TierResult):
                    result = item
                else:
                    parts.append(item.payload.text)
        except Exception as exc:  # a failed shadow is only a lost sample
            _log.info("shadow request failed", error=repr(exc))
            return
        if result is None:
            return
        score = agreement(served_text, "".join(parts))
        m = self._metrics
        m.shadow_requests.labels(m.tier(served_tier)).inc()
        m.shadow_agreement.observe(score)
        cost = token_cost(result.prompt_tokens, result.completion_tokens, self._prices)
        m.shadow_cost.labels(m.tier(self._largest)).inc(cost)
        _log.info("shadow_done", served_tier=served_tier, agreement=round(score, 4), cost_usd=cost)

    @property
    def in_flight(self) -> int:
        """Shadows running now."""
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel running shadows."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

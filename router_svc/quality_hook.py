"""What the servicer asks of the quality loop, behind one small interface with a null object.

:class:`QualityOn` wraps the :class:`~router_svc.quality.QualityLoop` for the router: per-tier
thresholds for the cascade plan, an :class:`~router_svc.answer_scoring.AnswerRecorder` per
request, the finished requests (counted, remembered for feedback, offered to the
:class:`~router_svc.judged_samples.JudgedSampler`), caller feedback, and the report, refreshed
periodically so the metrics stay current. :class:`QualityOff` is what a router without the
loop holds (``quality.enabled`` false): no thresholds, no recorder, nothing stored, so the
request path is the one it was before the loop existed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from router_svc.answer_scoring import AnswerRecorder
from router_svc.feedback import RecentRequests, StoredFeedback, store_feedback
from router_svc.judged_samples import JudgedSampler, ServedRequest
from router_svc.quality import CostTotals, JudgedSample, QualityLoop, QualityReport, TierThreshold
from router_svc.shadow import ShadowOpener
from tierroute.errors import FailedPreconditionError
from tierroute.tasks import cancel_and_wait

_log = structlog.get_logger("router_svc.quality_hook")


@dataclass(frozen=True)
class QualitySnapshot:
    """The loop's figures for ``GetQuality``."""

    report: QualityReport
    thresholds: Mapping[str, TierThreshold]
    samples: list[JudgedSample]
    traffic: CostTotals
    computed_time: float


class QualityHook(Protocol):
    """The quality loop as the servicer sees it."""

    @property
    def enabled(self) -> bool:
        """Whether the loop runs."""
        ...

    def thresholds(self) -> Mapping[str, float]:
        """The escalation threshold in force per cheaper tier (empty: the policy's)."""
        ...

    def recorder(self, prompt: str, attach_score: bool = True) -> AnswerRecorder | None:
        """A recorder of one request's answers (None: answers are not kept); ``attach_score``
        False keeps the cascade on the model's confidence."""
        ...

    def finished(self, request: ServedRequest, shadow: ShadowOpener) -> None:
        """A request was answered: count it, remember it, maybe judge it (in the background)."""
        ...

    async def feedback(self, request_id: str, tenant: str, score: float) -> StoredFeedback:
        """Store a caller's feedback on one of its recent requests."""
        ...

    async def snapshot(self) -> QualitySnapshot | None:
        """The current report (None when the loop is off)."""
        ...

    def start(self) -> None:
        """Start the periodic report."""
        ...

    async def close(self) -> None:
        """Stop judging and reporting, and persist the loop's state."""
        ...


class QualityOff:
    """The null quality loop: nothing kept, judged or stored."""

    @property
    def enabled(self) -> bool:
        """Never."""
        return False

    def thresholds(self) -> Mapping[str, float]:
        """None: the policy's fallback threshold applies to every tier."""
        return {}

    def recorder(self, prompt: str, attach_score: bool = True) -> AnswerRecorder | None:
        """None: the cascade compares the model's confidence."""
        return None

    def finished(self, request: ServedRequest, shadow: ShadowOpener) -> None:
        """Nothing to do."""

    async def feedback(self, request_id: str, tenant: str, score: float) -> StoredFeedback:
        """Refused: without the loop there is nowhere to store it."""
        raise FailedPreconditionError("the quality loop is off (quality.enabled): no feedback")

    async def snapshot(self) -> QualitySnapshot | None:
        """None: the loop is off."""
        return None

    def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""


class QualityOn:
    """The running quality loop, as the servicer uses it."""

    def __init__(
        self,
        loop: QualityLoop,
        sampler: JudgedSampler,
        recent: RecentRequests,
        tiers: tuple[str, ...],
        report_interval_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._loop = loop
        self._sampler = sampler
        self._recent = recent
        self._largest = tiers[-1]
        self._scored = frozenset(tiers[:-1])
        self._interval = report_interval_seconds
        self._clock = clock
        self._requests = 0
        self._direct_largest = 0
        self._served_cost = 0.0
        self._baseline_cost = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Always."""
        return True

    @property
    def loop(self) -> QualityLoop:
        """The loop (pins, tests)."""
        return self._loop

    def thresholds(self) -> Mapping[str, float]:
        """The controller's threshold per cheaper tier."""
        return {tier: self._loop.threshold(tier) for tier in self._scored}

    def recorder(self, prompt: str, attach_score: bool = True) -> AnswerRecorder:
        """A recorder scoring the cheaper tiers' answers with the loop's learned score."""
        return AnswerRecorder(self._loop, self._scored, prompt, attach_score)

    def finished(self, request: ServedRequest, shadow: ShadowOpener) -> None:
        """Count the request, remember it for feedback, offer it for judging."""
        self._requests += 1
        if request.first_tier == self._largest:
            self._direct_largest += 1
        self._served_cost += request.cost_usd
        self._baseline_cost += request.baseline_cost_usd
        self._recent.remember(request)
        self._sampler.submit(request, shadow)

    @property
    def direct_largest_share(self) -> float:
        """Share of answered requests routed straight to the largest tier (never sampled)."""
        return self._direct_largest / self._requests if self._requests else 0.0

    async def feedback(self, request_id: str, tenant: str, score: float) -> StoredFeedback:
        """Store the caller's score as a ``feedback`` judgment of that request."""
        return await store_feedback(
            self._loop, self._recent, request_id, tenant, score, self._clock
        )

    async def snapshot(self) -> QualitySnapshot:
        """The loop's report over its samples and the traffic since start (also exported)."""
        traffic = CostTotals(
            self._served_cost,
            self._baseline_cost,
            self._sampler.shadow_cost_usd,
            self._sampler.judge_cost_usd,
        )
        report = await self._loop.report(
            direct_largest_share=self.direct_largest_share, traffic=traffic
        )
        return QualitySnapshot(
            report=report,
            thresholds=self._loop.controller.states(),
            samples=await self._loop.samples(),
            traffic=traffic,
            computed_time=self._clock(),
        )

    def start(self) -> None:
        """Start the periodic report (metrics fresh between ``GetQuality`` calls)."""
        if self._task is None and self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._report_loop())

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.snapshot()
            except Exception:  # a failed report must not end the loop
                _log.exception("quality report failed")

    async def close(self) -> None:
        """Stop reporting and judging, then persist samples, thresholds and score models."""
        await cancel_and_wait(self._task)
        self._task = None
        await self._sampler.close()
        await self._loop.close()

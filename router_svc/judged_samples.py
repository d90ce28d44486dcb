"""Judged samples of served requests: shadow, judge and record, off the caller's path.

Once the caller has its answer, a request whose first tier was a cheaper one is offered to
:meth:`JudgedSampler.submit`. In the background the quality loop decides whether to sample it
(:meth:`~router_svc.quality.QualityLoop.should_sample`, adaptive; the sample's weight is the
inverse of that probability), then:

- served by a cheaper tier: the same request is replayed on the largest tier (the *shadow*, its
  cost counted) and the judge compares the cheaper answer with the shadow's;
- escalated to the largest tier: the cheaper tier's discarded answer is judged against the
  largest tier's served answer, no shadow call needed.

The verdict becomes a :class:`~router_svc.quality.JudgedSample` recorded in the loop (which
refits the score and moves the threshold as evidence accumulates). A judge that fails or
cannot decide drops the sample: a log line, and ``verdict="undecided"`` in the judged-samples
counter. At most ``max_in_flight`` samples are shadowed and judged at once; beyond that a
sample is dropped, so judging never queues up behind real traffic.

No gRPC: the shadow call is an injected opener of the largest tier's stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from router_svc.answer_scoring import TierAnswer
from router_svc.cascade import TierResult
from router_svc.costs import Prices, token_cost
from router_svc.quality import JudgedSample, QualityLoop
from router_svc.shadow import ShadowOpener
from tierroute.judges import JudgeCase, JudgeError, Verdict
from tierroute.judges.registry import JudgeRegistry

_log = structlog.get_logger("router_svc.judged_samples")


@dataclass(frozen=True)
class ServedRequest:
    """What the router knows of a finished request, for judging and for caller feedback."""

    request_id: str
    tenant: str
    route: str
    """The routing reason (rule name or classifier decision)."""
    prompt: str
    """The routing text (a raw prompt, or a chat's last user message): what the judge reads."""
    first_tier: str
    """The tier the request started at."""
    served_tier: str
    tiers_tried: tuple[str, ...]
    escalated: bool
    degraded: bool
    answers: Mapping[str, TierAnswer]
    routing_score: float | None
    cost_usd: float
    baseline_cost_usd: float
    time: float
    """When the request finished (unix seconds)."""

    @property
    def first_answer(self) -> TierAnswer | None:
        """The first tier's finished, scored answer, if it has one."""
        answer = self.answers.get(self.first_tier)
        if answer is None or not answer.finished or answer.score is None:
            return None
        return answer

    def judged(
        self,
        verdict: Verdict,
        *,
        score: float,
        features: Mapping[str, float],
        sample_weight: float,
        shadow_cost_usd: float,
        time: float,
    ) -> JudgedSample:
        """The judged sample of this request's first tier's answer (the one record builder)."""
        return JudgedSample(
            request_id=self.request_id,
            tenant=self.tenant,
            route=self.route,
            tier=self.first_tier,
            served_tier=self.served_tier,
            tiers_tried=self.tiers_tried,
            escalated=self.escalated,
            score=score,
            features=features,
            routing_score=self.routing_score,
            judge=verdict.judge,
            acceptable=verdict.acceptable,
            judge_score=verdict.score,
            sample_weight=max(1.0, sample_weight),
            served_cost_usd=self.cost_usd,
            baseline_cost_usd=self.baseline_cost_usd,
            shadow_cost_usd=shadow_cost_usd,
            judge_cost_usd=verdict.cost_usd,
            time=time,
        )


@dataclass(frozen=True)
class _Reference:
    text: str
    shadow_cost_usd: float


class JudgedSampler:
    """Samples finished requests, shadows them on the largest tier, judges and records them."""

    def __init__(
        self,
        loop: QualityLoop,
        judges: JudgeRegistry,
        largest: str,
        largest_prices: Prices,
        max_in_flight: int,
        clock: Callable[[], float] = time.time,
        on_verdict: Callable[[ServedRequest, bool], None] | None = None,
    ) -> None:
        self._loop = loop
        self._on_verdict = on_verdict
        self._judges = judges
        self._largest = largest
        self._prices = largest_prices
        self._max_in_flight = max_in_flight
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._judging = 0
        self.shadow_cost_usd = 0.0
        """Spend of every shadow call so far, judged or not (US dollars)."""
        self.judge_cost_usd = 0.0
        """Spend of every judgment so far, decided or not (US dollars)."""

    @property
    def in_flight(self) -> int:
        """Samples being shadowed or judged now."""
        return self._judging

    def submit(self, request: ServedRequest, shadow: ShadowOpener) -> bool:
        """Offer a finished request; False when it cannot be judged (no cheaper answer)."""
        if request.first_tier == self._largest or request.degraded:
            return False
        if request.first_answer is None:
            return False  # the first tier failed or was cut short: nothing to judge
        task = asyncio.get_running_loop().create_task(self._run(request, shadow))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, request: ServedRequest, shadow: ShadowOpener) -> None:
        decision = await self._loop.should_sample(request.first_tier, request.escalated)
        if not decision.sampled:
            return
        if self._judging >= self._max_in_flight:
            _log.info("judged_sample_dropped", reason="too many in flight")
            return
        self._judging += 1
        try:
            await self._judge(request, shadow, decision.weight)
        except Exception:  # a lost sample must never reach the caller or stop the loop
            _log.exception("judged_sample_failed", request_id=request.request_id)
        finally:
            self._judging -= 1

    async def _judge(self, request: ServedRequest, shadow: ShadowOpener, weight: float) -> None:
        candidate = request.first_answer
        assert candidate is not None and candidate.score is not None
        reference = await self._reference(request, shadow)
        if reference is None:
            return
        self.shadow_cost_usd += reference.shadow_cost_usd
        judge = self._judges.select(request.route, request.tenant)
        case = JudgeCase(prompt=request.prompt, candidate=candidate.text, reference=reference.text)
        try:
            verdict = await judge.judge(case)
        except JudgeError as exc:
            self._undecided(request, judge.name, reference.shadow_cost_usd, 0.0, str(exc))
            return
        self.judge_cost_usd += verdict.cost_usd
        if not verdict.decided:
            self._undecided(
                request, verdict.judge, reference.shadow_cost_usd, verdict.cost_usd, verdict.reason
            )
            return
        sample = request.judged(
            verdict,
            score=candidate.score,
            features=candidate.features or {},
            sample_weight=weight,
            shadow_cost_usd=reference.shadow_cost_usd,
            time=request.time,
        )
        await self._loop.record(sample)
        if self._on_verdict is not None:
            # Other learners (the start tier) hear the verdict too: an unacceptable answer of a
            # cheaper tier is a request that should have started higher.
            self._on_verdict(request, verdict.acceptable)
        _log.info(
            "judged_sample",
            request_id=request.request_id,
            tier=request.first_tier,
            served_tier=request.served_tier,
            judge=verdict.judge,
            acceptable=verdict.acceptable,
            score=round(candidate.score, 4),
            shadow_cost_usd=reference.shadow_cost_usd,
            judge_cost_usd=verdict.cost_usd,
        )

    async def _reference(self, request: ServedRequest, shadow: ShadowOpener) -> _Reference | None:
        """The largest tier's answer: the served one when it served, else a shadow's."""
        served = request.answers.get(self._largest)
        if request.served_tier == self._largest and served is not None and served.finished:
            return _Reference(served.text, 0.0)
        parts: list[str] = []
        cost = 0.0
        try:
            async for item in shadow():
                if isinstance(item, TierResult):
                    cost = token_cost(item.prompt_tokens, item.completion_tokens, self._prices)
                else:
                    parts.append(item.payload.text)
        except Exception as exc:  # a failed shadow is only a lost sample
            _log.info("shadow request failed", request_id=request.request_id, error=repr(exc))
            return None
        return _Reference("".join(parts), cost)

    def _undecided(
        self, request: ServedRequest, judge: str, shadow_cost: float, judge_cost: float, why: str
    ) -> None:
        _log.info("judged_sample_undecided", request_id=request.request_id, judge=judge, reason=why)
        self._loop.record_undecided(request.first_tier, judge, shadow_cost, judge_cost)

    async def close(self) -> None:
        """Cancel the samples in flight (their requests are long answered)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The cascade: serve a request from an ordered chain of tiers, escalating on low confidence.

A small state machine with no gRPC: it opens one tier stream at a time through an injected
:data:`TierOpener`, decides what the caller sees, and yields :class:`Forward`,
:class:`Escalation` and finally one :class:`Outcome`. Token payloads and the tier's final
message are opaque to it: they are type parameters (``Payload``, ``Detail``), so what a tier
client puts in comes out typed at the caller's end.

Modes (``FallbackModeName``):

- ``BUFFERED``: a tier that may still escalate has its tokens held until its confidence is
  known; confident, they are flushed; otherwise the next tier serves and the caller never sees
  the discarded answer.
- ``STREAMING``: tokens are forwarded at once; on escalation an :class:`Escalation` tells the
  caller how many tokens to discard, then the next tier's answer follows.
- ``EARLY_WINDOW``: the first K tokens are held; their running confidence below the threshold
  abandons the tier early (its call is cancelled); otherwise they are flushed and the rest is
  streamed, and a low final confidence still escalates as in ``STREAMING``.
- ``DISABLED``: the routed tier's answer is final (tier errors still fall back).

Errors: a tier failing falls back to the next tier (cause ``TIER_ERROR``) before any of its
tokens reached the caller, and also after, in the modes whose callers accept retraction
(``STREAMING``, ``EARLY_WINDOW``: the escalation tells them how many tokens to discard). When no
larger tier is left the request *degrades*: a complete but unconfident answer of a smaller tier
is served, or a smaller tier not yet failed is asked, with the reason stated. A tier failing
after its tokens reached a caller with no retraction contract (``DISABLED``), or with no larger
tier left, ends the request with a clean UNAVAILABLE error: retrying would duplicate text.

Cost cap (``CascadePlan.spend_cap``): before each call the worst case of the calls made plus
the next one must fit the caller's cap; a larger tier that would break it is not called (the
unconfident answer is served, degraded, with the reason).

:class:`Escalation` events are sent when the next tier produces its first token for the caller,
so a caller never hears of an escalation that then fell through to a degraded answer.

What a finished answer is compared with: its :attr:`TierResult.escalation_score` (the quality
loop's learned score when the tier opener set one, else the model's confidence) against the
tier's threshold (:meth:`CascadePlan.threshold_of`). The early window always reads the running
confidence against ``CascadePlan.threshold``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Generic

from router_svc.cascade_types import (
    CascadeEvent,
    CascadePlan,
    Chunk,
    Detail,
    Escalation,
    EscalationCauseName,
    FallbackModeName,
    Forward,
    Outcome,
    Payload,
    TierFailure,
    TierOpener,
    TierResult,
)
from router_svc.costs import TokenUsage
from tierroute.errors import InvalidArgumentError, UnavailableError

__all__ = [
    "Cascade",
    "CascadeEvent",
    "CascadePlan",
    "Chunk",
    "Escalation",
    "EscalationCauseName",
    "FallbackModeName",
    "Forward",
    "Outcome",
    "TierFailure",
    "TierOpener",
    "TierResult",
]

# Modes whose callers handle Escalated with discarded tokens (they were sent tokens that may
# be withdrawn): a tier dying mid-stream is retracted and failed over like low confidence.
_RETRACTABLE = frozenset({FallbackModeName.STREAMING, FallbackModeName.EARLY_WINDOW})


@dataclass(slots=True)
class _Attempt(Generic[Payload, Detail]):
    """One call to one tier and what it produced."""

    index: int
    tier: str
    prompt_tokens: int | None = None
    """Prompt tokens the tier reported before its first token (None: not reported)."""
    received_tokens: int = 0
    forwarded_chunks: int = 0
    forwarded_tokens: int = 0
    held: list[Chunk[Payload]] = field(default_factory=list)
    result: TierResult[Detail] | None = None
    error: TierFailure | None = None
    pending_mark: int = 0
    """Escalations pending before this tier's own; kept if its answer ends up served."""


class Cascade(Generic[Payload, Detail]):
    """One request's walk through the tiers; iterate :meth:`run` once."""

    def __init__(self, plan: CascadePlan, opener: TierOpener[Payload, Detail]) -> None:
        if not 0 <= plan.start < len(plan.tiers):
            raise ValueError(f"start tier index {plan.start} out of range")
        self._plan = plan
        self._open = opener
        self._attempts: list[_Attempt[Payload, Detail]] = []
        self._pending: list[Escalation] = []
        self._escalated = False
        self._capped: list[str] = []
        """Why the cap kept the request from a tier, for the degraded reason and errors."""

    @property
    def attempts(self) -> int:
        """Tier calls made so far."""
        return len(self._attempts)

    def record_prompt_tokens(self, tier: str, tokens: int) -> None:
        """``tier``'s current call reported its prompt's token count (before its first token)."""
        for attempt in reversed(self._attempts):
            if attempt.tier == tier:
                attempt.prompt_tokens = tokens
                return

    def usages(self, served: _Attempt[Payload, Detail] | None = None) -> tuple[TokenUsage, ...]:
        """Tokens per tier call so far (also after a failure, for the cost of wasted tokens).

        A call that ended without its ``Finished`` (cancelled early, failed) is charged the
        prompt tokens it reported when it began; a tier that reported none is estimated from
        the other calls' counts of the same prompt.
        """
        known = [a.result.prompt_tokens for a in self._attempts if a.result is not None]
        known += [a.prompt_tokens for a in self._attempts if a.prompt_tokens is not None]
        estimate = max(known, default=0)
        usages = []
        for attempt in self._attempts:
            if attempt.result is not None:
                prompt, completion = attempt.result.prompt_tokens, attempt.result.completion_tokens
            elif attempt.prompt_tokens is not None:
                prompt, completion = attempt.prompt_tokens, attempt.received_tokens
            else:
                # No count and no tokens: the tier most likely refused before prefilling.
                prompt = estimate if attempt.received_tokens else 0
                completion = attempt.received_tokens
            usages.append(TokenUsage(attempt.tier, prompt, completion, attempt is not served))
        return tuple(usages)

    async def run(self) -> AsyncGenerator[CascadeEvent[Payload, Detail], None]:
        """Serve the request; ends with one :class:`Outcome` or raises a ``TierrouteError``."""
        plan = self._plan
        index = plan.start
        failed: set[int] = set()
        unconfident: _Attempt[Payload, Detail] | None = (
            None  # latest complete but unconfident answer
        )
        degrading = False  # a larger tier failed: serve from the smaller ones, never escalate
        while True:
            tier = plan.tiers[index]
            attempt: _Attempt[Payload, Detail] = _Attempt(index, tier)
            self._attempts.append(attempt)
            larger = self._larger(index, degrading)
            may_escalate = larger is not None and plan.mode is not FallbackModeName.DISABLED
            try:
                async for event in self._serve_tier(attempt, may_escalate):
                    yield event
            except TierFailure as exc:
                attempt.error = exc
                failed.add(index)
                reached = attempt.forwarded_chunks > 0
                if reached and (larger is None or plan.mode not in _RETRACTABLE):
                    raise self._broken_stream(attempt, exc) from exc
                if larger is not None:
                    if reached:
                        # The caller was shown this tier's answer after any older one: serving
                        # an older answer now would need a second retraction.
                        unconfident = None
                    self._pending.append(self._failover(attempt, exc, plan.tiers[larger]))
                    index = larger
                    continue
                degrading = True
                if unconfident is not None:
                    # Escalations up to the tier whose answer is kept still happened.
                    del self._pending[unconfident.pending_mark :]
                    async for event in self._finish(unconfident, degraded=True):
                        yield event
                    return
                smaller = [i for i in range(index - 1, -1, -1) if i not in failed]
                smaller = [i for i in smaller if self._affordable(plan.tiers[i])]
                if not smaller:
                    raise self._all_failed() from exc
                # The caller has seen nothing of the abandoned tiers but, after a failover,
                # the tokens it must still discard: that retraction now leads to the smaller tier.
                retraction = self._pending[0] if self._pending else None
                self._pending.clear()
                if retraction is not None and retraction.discarded_tokens:
                    to_tier = plan.tiers[smaller[0]]
                    self._pending.append(replace(retraction, to_tier=to_tier))
                index = smaller[0]
                continue
            if attempt.result is None:
                # Early-window abort: the tier was cancelled on purpose; try the next one.
                index += 1
                continue
            score = attempt.result.escalation_score
            bar = plan.threshold_of(tier)
            if may_escalate and score < bar:
                unconfident = attempt
                attempt.pending_mark = len(self._pending)
                what = "confidence" if attempt.result.score is None else "escalation score"
                self._pending.append(
                    Escalation(
                        from_tier=tier,
                        to_tier=plan.tiers[index + 1],
                        cause=EscalationCauseName.LOW_CONFIDENCE,
                        confidence_score=score,
                        reason=f"{what} {score:.3f} below the threshold {bar:.3f}",
                        discarded_tokens=attempt.forwarded_tokens,
                    )
                )
                index += 1
                continue
            # An unconfident answer kept only because the cap forbade the next tier is degraded.
            capped = (
                bool(self._capped) and score < bar and plan.mode is not FallbackModeName.DISABLED
            )
            async for event in self._finish(attempt, degraded=degrading or capped):
                yield event
            return

    def _larger(self, index: int, degrading: bool) -> int | None:
        """The next tier's index if the request may move up to it (cap included), else None."""
        plan = self._plan
        if degrading or index + 1 >= len(plan.tiers):
            return None
        return index + 1 if self._affordable(plan.tiers[index + 1]) else None

    def _affordable(self, tier: str) -> bool:
        """Whether one more call, to ``tier``, keeps the request within its cost cap."""
        cap = self._plan.spend_cap
        if cap is None:
            return True
        called = [a.tier for a in self._attempts]
        if cap.allows(called, tier):
            return True
        self._capped.append(cap.refusal(called, tier))
        return False

    def _failover(
        self, attempt: _Attempt[Payload, Detail], exc: TierFailure, to_tier: str
    ) -> Escalation:
        """The escalation away from a failed tier, retracting what it forwarded."""
        sent = attempt.forwarded_tokens
        if sent:
            when = f"after {sent} tokens reached the caller"
        elif attempt.received_tokens:
            when = f"after {attempt.received_tokens} tokens, none of which reached the caller"
        else:
            when = "before its first token"
        return Escalation(
            from_tier=attempt.tier,
            to_tier=to_tier,
            cause=EscalationCauseName.TIER_ERROR,
            confidence_score=0.0,
            reason=f"tier {attempt.tier} failed {when}: {exc.code}: {exc.message}",
            discarded_tokens=sent,
        )

    def _broken_stream(
        self, attempt: _Attempt[Payload, Detail], exc: TierFailure
    ) -> UnavailableError:
        """The error of a tier failing after its tokens reached the caller, with no failover."""
        if self._plan.mode not in _RETRACTABLE:
            why = f"fallback mode {self._plan.mode.value} does not retract text"
        elif self._capped:
            why = f"no larger tier left within the cap ({self._capped[-1]})"
        else:
            why = "no larger tier left"
        return UnavailableError(
            f"tier {attempt.tier} failed after {attempt.forwarded_tokens} tokens reached the "
            f"caller ({exc.code}: {exc.message}); not retried, to avoid duplicate text: {why}"
        )

    async def _serve_tier(
        self, attempt: _Attempt[Payload, Detail], may_escalate: bool
    ) -> AsyncIterator[CascadeEvent[Payload, Detail]]:
        """Stream one tier; leaves ``attempt.result`` unset when the early window gave up on it."""
        plan = self._plan
        hold = may_escalate and plan.mode in (
            FallbackModeName.BUFFERED,
            FallbackModeName.EARLY_WINDOW,
        )
        windowed = hold and plan.mode is FallbackModeName.EARLY_WINDOW
        async with aclosing(self._open(attempt.tier)) as stream:
            async for item in stream:
                if isinstance(item, TierResult):
                    attempt.result = item
                    continue
                attempt.received_tokens += item.tokens
                if hold:
                    attempt.held.append(item)
                    if windowed and attempt.received_tokens >= plan.early_window_tokens:
                        if item.running_confidence < plan.threshold:
                            self._early_exit(attempt, item.running_confidence)
                            return  # closing the stream cancels the tier's call
                        hold = False
                        for event in self._release(attempt):
                            yield event
                    continue
                for event in self._forward(attempt, item):
                    yield event
        if attempt.result is None:
            raise TierFailure(attempt.tier, "INTERNAL", "stream ended without Finished")

    def _early_exit(self, attempt: _Attempt[Payload, Detail], running: float) -> None:
        plan = self._plan
        attempt.held.clear()
        self._pending.append(
            Escalation(
                from_tier=attempt.tier,
                to_tier=plan.tiers[attempt.index + 1],
                cause=EscalationCauseName.EARLY_WINDOW,
                confidence_score=running,
                reason=f"running confidence {running:.3f} of the first "
                f"{attempt.received_tokens} tokens below the threshold {plan.threshold:.3f}",
                discarded_tokens=0,
            )
        )

    def _forward(
        self, attempt: _Attempt[Payload, Detail], chunk: Chunk[Payload]
    ) -> list[CascadeEvent[Payload, Detail]]:
        events: list[CascadeEvent[Payload, Detail]] = []
        if self._pending:
            # The next tier is really serving now: the caller learns of the escalations.
            self._escalated = True
            events.extend(self._pending)
            self._pending.clear()
        attempt.forwarded_chunks += 1
        attempt.forwarded_tokens += chunk.tokens
        events.append(Forward(attempt.tier, chunk))
        return events

    def _release(self, attempt: _Attempt[Payload, Detail]) -> list[CascadeEvent[Payload, Detail]]:
        events: list[CascadeEvent[Payload, Detail]] = []
        held, attempt.held = attempt.held, []
        for chunk in held:
            events.extend(self._forward(attempt, chunk))
        return events

    async def _finish(
        self, attempt: _Attempt[Payload, Detail], degraded: bool
    ) -> AsyncIterator[CascadeEvent[Payload, Detail]]:
        # The reason names every larger tier that failed, a dead middle tier as well as the
        # last one, since each of them is why a smaller tier's answer is served.
        reasons = [
            f"tier {a.tier} unavailable ({a.error.code}: {a.error.message})"
            for a in self._attempts
            if a.error is not None and a.index > attempt.index
        ]
        degraded_reason = "; ".join(reasons + self._capped[:1]) if degraded else ""
        if self._pending:
            self._escalated = True
            for escalation in self._pending:
                yield escalation
            self._pending.clear()
        for event in self._release(attempt):
            yield event
        assert attempt.result is not None
        yield Outcome(
            served_tier=attempt.tier,
            result=attempt.result,
            usages=self.usages(served=attempt),
            escalated=self._escalated,
            degraded=degraded,
            degraded_reason=degraded_reason,
        )

    def _all_failed(self) -> Exception:
        errors = [a.error for a in self._attempts if a.error is not None]
        if errors and all(e.code == "INVALID_ARGUMENT" for e in errors):
            last = errors[-1]
            return InvalidArgumentError(last.field or "prompt", last.message)
        summary = "; ".join(
            [f"{e.tier}: {e.code} ({e.message})" for e in errors] + self._capped[:1]
        )
        return UnavailableError(f"no tier could serve the request: {summary}")

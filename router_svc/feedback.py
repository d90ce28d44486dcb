"""Caller feedback: a caller's score of a request it sent, stored as a judged sample.

The router remembers its recent finished requests (:class:`RecentRequests`, bounded: the
oldest are forgotten first) by request id. Feedback on one of them
(:func:`store_feedback`) becomes a :class:`~router_svc.quality.JudgedSample` judged
``"feedback"`` (acceptable when the score reaches
:data:`~tierroute.judges.feedback.ACCEPTABLE_FROM`) of the cheaper tier that answered it first;
feedback sent again for the same request replaces the earlier one. Only the tenant that sent
the request may judge it. No gRPC: :func:`check_feedback` validates plain values.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from router_svc.judged_samples import ServedRequest
from router_svc.quality import QualityLoop
from tierroute.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from tierroute.judges import verdict_from_feedback
from tierroute.judges.feedback import ACCEPTABLE_FROM, NAME

MAX_REQUEST_ID_CHARS = 128
MAX_COMMENT_CHARS = 1000


def check_feedback(request_id: str, score: float | None, comment: str) -> float:
    """The score of valid feedback; ``InvalidArgumentError`` naming the field otherwise."""
    if not 1 <= len(request_id) <= MAX_REQUEST_ID_CHARS or not all(
        " " <= c <= "~" for c in request_id
    ):
        raise InvalidArgumentError(
            "request_id", f"must be 1 to {MAX_REQUEST_ID_CHARS} printable ASCII characters"
        )
    if score is None:
        raise InvalidArgumentError("score", "is required (0 is a meaningful score)")
    if not 0.0 <= score <= 1.0:  # NaN fails this too
        raise InvalidArgumentError("score", "must be a number in [0, 1]")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidArgumentError("comment", f"must be at most {MAX_COMMENT_CHARS} characters")
    return score


class RecentRequests:
    """The most recent finished requests by id (bounded; the oldest are forgotten)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._requests: OrderedDict[str, ServedRequest] = OrderedDict()

    def remember(self, request: ServedRequest) -> None:
        """Keep ``request`` (a request id seen again replaces the earlier one)."""
        self._requests.pop(request.request_id, None)
        self._requests[request.request_id] = request
        while len(self._requests) > self._capacity:
            self._requests.popitem(last=False)

    def get(self, request_id: str) -> ServedRequest | None:
        """The remembered request, or None."""
        return self._requests.get(request_id)

    def __len__(self) -> int:
        return len(self._requests)


@dataclass(frozen=True)
class StoredFeedback:
    """The judgment as stored."""

    request_id: str
    judge: str
    score: float
    acceptable: bool
    acceptance_threshold: float
    served_tier: str
    replaced: bool
    recorded_time: float
    """Unix seconds."""


async def store_feedback(
    loop: QualityLoop,
    recent: RecentRequests,
    request_id: str,
    tenant: str,
    score: float,
    clock: Callable[[], float] = time.time,
) -> StoredFeedback:
    """Store ``tenant``'s ``score`` of ``request_id`` (NOT_FOUND / PERMISSION_DENIED as due)."""
    request = recent.get(request_id)
    if request is None:
        raise NotFoundError(f"no recent request {request_id!r} is held by this router")
    if request.tenant != tenant:
        # Same message as unknown would leak that the id exists; the code says enough.
        raise PermissionDeniedError("feedback may only come from the tenant that sent it")
    verdict = verdict_from_feedback(score)
    answer = request.first_answer
    if answer is not None and answer.score is not None:
        answer_score, features = answer.score, dict(answer.features or {})
    else:
        served = request.answers.get(request.served_tier)
        confidence = served.confidence if served is not None else None
        answer_score, features = min(1.0, max(0.0, confidence or 0.0)), {}
    now = clock()
    # Feedback is not drawn at random: it stands for itself only (weight 1).
    sample = request.judged(
        verdict,
        score=answer_score,
        features=features,
        sample_weight=1.0,
        shadow_cost_usd=0.0,
        time=now,
    )
    replaced = await loop.discard(request_id, NAME)
    await loop.record(sample)
    return StoredFeedback(
        request_id=request_id,
        judge=NAME,
        score=verdict.score,
        acceptable=verdict.acceptable,
        acceptance_threshold=ACCEPTABLE_FROM,
        served_tier=request.served_tier,
        replaced=replaced,
        recorded_time=now,
    )

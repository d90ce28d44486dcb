"""``POST /v1/feedback`` bodies to ``RouterService.SubmitFeedback`` requests, and back (no I/O).

The body is ``{"request_id": str, "score": number in [0, 1], "comment": str?}``. Every field
the endpoint can check is checked here, so a malformed body never reaches the router; a
refusal is a 400 naming the field, as for the completion routes.
"""

from __future__ import annotations

from typing import Any

from openai_gateway.errors import ApiError, invalid
from tierroute.v1 import router_service_pb2

# The contract's bounds (SubmitFeedbackRequest in protos/tierroute/v1/router_service.proto).
MAX_REQUEST_ID_CHARS = 128
MAX_COMMENT_CHARS = 1000
_FIELDS = frozenset({"request_id", "score", "comment"})


def _printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def parse_feedback(body: Any) -> router_service_pb2.SubmitFeedbackRequest:
    """The router's request for a feedback body; an ``ApiError`` (400) naming the bad field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_type")
    for key in body:
        if key not in _FIELDS:
            raise invalid(key, f"'{key}' is not a feedback field", "unsupported_parameter")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise invalid("request_id", "'request_id' is required: the id the answer came with")
    if len(request_id) > MAX_REQUEST_ID_CHARS or not _printable_ascii(request_id):
        raise invalid(
            "request_id",
            f"'request_id' must be printable ASCII of at most {MAX_REQUEST_ID_CHARS} characters",
        )
    score = body.get("score")
    if score is None:
        raise invalid("score", "'score' is required: a number from 0 (bad) to 1 (good)")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise invalid("score", "'score' must be a number", "invalid_type")
    if not 0.0 <= score <= 1.0:
        raise invalid("score", f"'score' must be between 0 and 1, got {score!r}")
    comment = body.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise invalid("comment", "'comment' must be a string", "invalid_type")
    if len(comment) > MAX_COMMENT_CHARS:
        raise invalid("comment", f"'comment' is longer than {MAX_COMMENT_CHARS} characters")
    return router_service_pb2.SubmitFeedbackRequest(
        request_id=request_id, score=float(score), comment=comment
    )


def feedback_body(reply: router_service_pb2.SubmitFeedbackResponse) -> dict[str, Any]:
    """The JSON answer: the judgment as the router stored it."""
    return {
        "object": "feedback",
        "request_id": reply.request_id,
        "judge": reply.judge,
        "score": reply.score,
        "acceptable": reply.acceptable,
        "acceptance_threshold": reply.acceptance_threshold,
        "served_tier": reply.served_tier,
        "replaced": reply.replaced,
        # Unix seconds, as OpenAI's "created" fields; 0 if the router sent no time.
        "recorded_at": reply.recorded_time.seconds,
    }

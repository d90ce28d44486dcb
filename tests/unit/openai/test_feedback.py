"""``POST /v1/feedback`` bodies to ``SubmitFeedbackRequest`` and the stored judgment back."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from openai_gateway.errors import ApiError
from openai_gateway.feedback import MAX_COMMENT_CHARS, feedback_body, parse_feedback
from tierroute.v1 import router_service_pb2


def test_a_full_body_translates_field_by_field() -> None:
    request = parse_feedback(
        {"request_id": "rid-7", "score": 1, "comment": "x" * MAX_COMMENT_CHARS}
    )
    assert request.request_id == "rid-7"
    assert request.HasField("score") and request.score == 1.0
    assert len(request.comment) == MAX_COMMENT_CHARS


def test_zero_is_a_score_and_a_null_comment_is_none() -> None:
    request = parse_feedback({"request_id": "rid-7", "score": 0, "comment": None})
    assert request.HasField("score") and request.score == 0.0
    assert request.comment == ""


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"request_id": "a b\n", "score": 1}, "request_id", "invalid_value"),
        ({"request_id": "a", "score": float("nan")}, "score", "invalid_value"),
        ({"request_id": "a", "score": [1]}, "score", "invalid_type"),
        ({"request_id": "a", "score": 1, "model": "x"}, "model", "unsupported_parameter"),
    ],
)
def test_refusals_name_the_field(body: dict[str, object], param: str, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_feedback(body)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_the_answer_carries_the_stored_judgment() -> None:
    reply = router_service_pb2.SubmitFeedbackResponse(
        request_id="rid-7",
        judge="feedback",
        score=0.75,
        acceptable=True,
        acceptance_threshold=0.5,
        served_tier="small",
        replaced=True,
        recorded_time=Timestamp(seconds=1767225600, nanos=5),
    )
    body = feedback_body(reply)
    assert body["object"] == "feedback" and body["recorded_at"] == 1767225600
    assert (body["score"], body["acceptable"], body["replaced"]) == (0.75, True, True)

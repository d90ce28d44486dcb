"""``POST /v1/feedback`` end to end: HTTP body -> endpoint -> SubmitFeedback on a gRPC router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.openai.scripted_router import Endpoint, ScriptedRouter


@pytest.fixture
async def http(endpoint: Endpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=endpoint.base_url, timeout=10) as client:
        yield client


async def _served(http: httpx.AsyncClient, request_id: str, key: str = "good") -> None:
    """One chat completion under ``request_id``, so the router holds a record of it."""
    reply = await http.post(
        "/chat/completions",
        json={"model": "tierroute-auto", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == request_id


async def _feedback(
    http: httpx.AsyncClient, body: Any, key: str = "good", **headers: str
) -> httpx.Response:
    return await http.post(
        "/feedback", json=body, headers={"authorization": f"Bearer {key}", **headers}
    )


async def test_feedback_on_a_served_request_is_stored_with_the_callers_key(
    http: httpx.AsyncClient, scripted: tuple[ScriptedRouter, int]
) -> None:
    servicer, _ = scripted
    await _served(http, "fb-stored")
    reply = await _feedback(http, {"request_id": "fb-stored", "score": 0.25, "comment": "wrong"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "object": "feedback",
        "request_id": "fb-stored",
        "judge": "feedback",
        "score": 0.25,
        "acceptable": False,
        "acceptance_threshold": 0.5,
        "served_tier": "small",
        "replaced": False,
        "recorded_at": 1767229200,
    }
    stored = servicer.feedback["fb-stored"]
    assert (stored.score, stored.comment) == (0.25, "wrong")
    # The bearer key travels to the router untouched, as for chat completions.
    assert servicer.feedback_metadata[-1]["authorization"] == "Bearer good"
    again = await _feedback(http, {"request_id": "fb-stored", "score": 1})
    assert again.status_code == 200
    assert again.json()["replaced"] is True and again.json()["acceptable"] is True
    assert servicer.feedback["fb-stored"].comment == ""


async def test_unknown_request_id_is_404_naming_it(http: httpx.AsyncClient) -> None:
    reply = await _feedback(http, {"request_id": "never-served", "score": 1.0})
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == ("request_id", "not_found")
    assert error["message"] == "no record of this request"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"score": 0.5}, "request_id"),
        ({"request_id": "", "score": 0.5}, "request_id"),
        ({"request_id": 7, "score": 0.5}, "request_id"),
        ({"request_id": "x" * 129, "score": 0.5}, "request_id"),
        ({"request_id": "caf\u00e9", "score": 0.5}, "request_id"),
        ({"request_id": "fb-stored"}, "score"),
        ({"request_id": "fb-stored", "score": 1.5}, "score"),
        ({"request_id": "fb-stored", "score": -0.1}, "score"),
        ({"request_id": "fb-stored", "score": "high"}, "score"),
        ({"request_id": "fb-stored", "score": True}, "score"),
        ({"request_id": "fb-stored", "score": 1, "comment": 3}, "comment"),
        ({"request_id": "fb-stored", "score": 1, "comment": "x" * 1001}, "comment"),
        ({"request_id": "fb-stored", "score": 1, "rating": 5}, "rating"),
    ],
)
async def test_invalid_bodies_are_400_naming_the_field_and_never_reach_the_router(
    http: httpx.AsyncClient, scripted: tuple[ScriptedRouter, int], body: Any, param: str
) -> None:
    servicer, _ = scripted
    before = len(servicer.feedback_metadata)
    reply = await _feedback(http, body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert len(servicer.feedback_metadata) == before


async def test_a_body_that_is_not_an_object_or_not_json_is_400(http: httpx.AsyncClient) -> None:
    assert (await _feedback(http, [1, 2])).status_code == 400
    broken = await http.post("/feedback", content=b"{", headers={"authorization": "Bearer good"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"


async def test_keys_are_checked_by_the_router(http: httpx.AsyncClient) -> None:
    await _served(http, "fb-owned")
    unknown = await _feedback(http, {"request_id": "fb-owned", "score": 1}, key="bad")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"
    # Another tenant's key may not judge this request.
    other = await _feedback(http, {"request_id": "fb-owned", "score": 1}, key="limited")
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("code", "status"),
    [("UNAVAILABLE", 503), ("DEADLINE_EXCEEDED", 504), ("RESOURCE_EXHAUSTED", 429)],
)
async def test_router_errors_map_like_the_other_routes(
    http: httpx.AsyncClient, code: str, status: int
) -> None:
    reply = await _feedback(http, {"request_id": f"error:{code}", "score": 1})
    assert reply.status_code == status
    if status == 429:
        assert reply.headers["retry-after-ms"] == "2500"


async def test_feedback_requests_are_counted_under_their_own_route(
    http: httpx.AsyncClient, endpoint: Endpoint
) -> None:
    await _feedback(http, {"request_id": "never-served", "score": 0})
    count = endpoint.registry.get_sample_value(
        "tierroute_openai_requests_total", {"route": "feedback", "status": "404"}
    )
    assert count is not None and count >= 1

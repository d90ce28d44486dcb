"""Reading a request on arrival: one pass over the protobuf gives the gate's inputs, the prompt
log's text and the validation verdict (a ``RouteRequest`` or the error naming the field)."""

from __future__ import annotations

import pytest

from router_svc.auth import ApiKeySettings, OpenGate, RequestedOptions, TenantGate, hash_key
from router_svc.cascade import FallbackModeName
from router_svc.config import LimitsSettings
from router_svc.route_request import (
    TEMPLATE_TOKENS_PER_MESSAGE,
    RouteRequest,
    read_generate,
    read_route,
)
from tierroute.errors import InvalidArgumentError, PermissionDeniedError, UnauthenticatedError
from tierroute.v1 import common_pb2
from tierroute.v1 import router_service_pb2 as rpb

LIMITS = LimitsSettings(max_prompt_bytes=100, max_tokens=64)


def chat(*turns: tuple[int, str]) -> common_pb2.Prompt:
    return common_pb2.Prompt(
        chat=common_pb2.Chat(
            messages=[common_pb2.ChatMessage(role=role, content=text) for role, text in turns]
        )
    )


def accepted(verdict: RouteRequest | InvalidArgumentError) -> RouteRequest:
    assert isinstance(verdict, RouteRequest), verdict
    return verdict


def test_a_valid_generate_request_becomes_a_route_request() -> None:
    prompt = chat(
        (common_pb2.ROLE_SYSTEM, "Be brief."),
        (common_pb2.ROLE_USER, "Hi"),
        (common_pb2.ROLE_ASSISTANT, "Hello."),
        (common_pb2.ROLE_USER, "Why is the sky blue?"),
    )
    message = rpb.RouterServiceGenerateRequest(
        request_id="req-1",
        prompt=prompt,
        sampling=common_pb2.SamplingParams(max_tokens=12, temperature=0.5),
        options=rpb.RouteOptions(
            fallback_mode=rpb.FALLBACK_MODE_EARLY_WINDOW, fallback_threshold=0.3, tier_hint="large"
        ),
    )
    arrival = read_generate(message, LIMITS, "from-metadata")
    route = accepted(arrival.verdict)
    assert (arrival.request_id, route.request_id) == ("req-1", "req-1")
    # The question is the last user turn; earlier turns are context.
    assert arrival.routing_text == route.routing_text == "Why is the sky blue?"
    assert (arrival.tier_hint, arrival.streaming) == ("large", False)
    assert route.fallback_mode is FallbackModeName.EARLY_WINDOW
    assert route.fallback_threshold == pytest.approx(0.3)
    assert route.max_cost_usd is None
    assert route.max_tokens == 12
    size = len("Be brief.Hi" + "Hello." + "Why is the sky blue?")
    assert route.worst_case_prompt_tokens == size + 4 * TEMPLATE_TOKENS_PER_MESSAGE
    # Passed on to the tiers exactly as received.
    assert route.prompt == prompt and route.sampling == message.sampling


def test_unset_options_leave_the_server_defaults() -> None:
    message = rpb.RouterServiceGenerateRequest(prompt=common_pb2.Prompt(text="Hello"))
    route = accepted(read_generate(message, LIMITS, "").verdict)
    assert route.fallback_mode is None and route.fallback_threshold is None
    assert route.max_cost_usd is None and route.max_tokens == 0
    assert route.worst_case_prompt_tokens == len("Hello")


def test_an_invalid_request_keeps_its_verdict_for_later_and_what_the_gate_needs() -> None:
    message = rpb.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text="x" * 101),
        options=rpb.RouteOptions(fallback_mode=rpb.FALLBACK_MODE_STREAMING, tier_hint="small"),
    )
    arrival = read_generate(message, LIMITS, "meta-id")
    assert isinstance(arrival.verdict, InvalidArgumentError)
    assert arrival.verdict.field == "prompt"
    assert "limit of this router is 100 bytes" in arrival.verdict.description
    # Read all the same: the permission checks come first, and the prompt log records it.
    assert (arrival.tier_hint, arrival.streaming) == ("small", True)
    assert arrival.routing_text == "x" * 101
    assert arrival.request_id == "meta-id"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (rpb.RouterServiceGenerateRequest(), "prompt"),
        (
            rpb.RouterServiceGenerateRequest(
                prompt=common_pb2.Prompt(text="hi"),
                sampling=common_pb2.SamplingParams(max_tokens=65),
            ),
            "sampling.max_tokens",
        ),
        (
            rpb.RouterServiceGenerateRequest(
                prompt=common_pb2.Prompt(text="hi"),
                options=rpb.RouteOptions(fallback_threshold=1.5),
            ),
            "options.fallback_threshold",
        ),
        (
            rpb.RouterServiceGenerateRequest(
                prompt=chat((common_pb2.ROLE_USER, "q"), (common_pb2.ROLE_ASSISTANT, "a"))
            ),
            "prompt.chat.messages[1].role",
        ),
    ],
)
def test_the_verdict_names_the_offending_field(
    message: rpb.RouterServiceGenerateRequest, field: str
) -> None:
    verdict = read_generate(message, LIMITS, "").verdict
    assert isinstance(verdict, InvalidArgumentError) and verdict.field == field


def test_request_ids_the_caller_cannot_use_are_refused_but_replaced_meanwhile() -> None:
    prompt = common_pb2.Prompt(text="hi")
    bad = read_generate(rpb.RouterServiceGenerateRequest(request_id="é", prompt=prompt), LIMITS, "")
    assert isinstance(bad.verdict, InvalidArgumentError) and bad.verdict.field == "request_id"
    assert len(bad.request_id) == 32 and bad.request_id.isalnum()  # a fresh id serves the error
    fresh = read_generate(rpb.RouterServiceGenerateRequest(prompt=prompt), LIMITS, "")
    assert accepted(fresh.verdict).request_id == fresh.request_id != bad.request_id


def test_route_reads_the_prompt_and_options_only() -> None:
    message = rpb.RouteRequest(
        prompt=common_pb2.Prompt(text="Where is Rome?"),
        options=rpb.RouteOptions(fallback_mode=rpb.FALLBACK_MODE_STREAMING),
    )
    arrival = read_route(message, LIMITS)
    route = accepted(arrival.verdict)
    assert (arrival.request_id, route.routing_text) == ("", "Where is Rome?")
    assert arrival.streaming is False  # Route never streams: no permission is asked for
    invalid = read_route(rpb.RouteRequest(options=rpb.RouteOptions(max_cost_usd=-1)), LIMITS)
    assert isinstance(invalid.verdict, InvalidArgumentError)
    assert invalid.verdict.field == "prompt"  # the prompt is checked before the options


async def test_the_open_gate_lets_everything_through_and_counts_nothing() -> None:
    caller = OpenGate().caller("Generate", None, "team-a")
    assert caller.name == "team-a"  # the x-tenant label, as the ledger records it
    caller.check_options(RequestedOptions("large", FallbackModeName.STREAMING, 1.0))
    await caller.check_budget()
    for _ in range(1000):
        await caller.admit()
        await caller.open_stream()
        await caller.reserve(1e9)
    caller.charge(1e9)
    await caller.close()


async def test_the_tenant_gate_hands_out_open_callers_for_open_methods_only() -> None:
    gate = TenantGate(
        [ApiKeySettings(tenant="acme", sha256=hash_key("k"))], open_methods=frozenset({"ListTiers"})
    )
    assert gate.caller("ListTiers", None, "label").name == "label"
    with pytest.raises(UnauthenticatedError):
        gate.caller("Generate", None, "label")
    caller = gate.caller("Generate", "Bearer k", "label")
    assert caller.name == "acme"
    with pytest.raises(PermissionDeniedError):
        caller.check_options(RequestedOptions("large"))
    await caller.open_stream()
    assert await gate.open_streams("acme") == 1
    caller.charge(0.25)
    await caller.close()
    assert await gate.open_streams("acme") == 0
    assert await gate.spent("acme") == pytest.approx(0.25)

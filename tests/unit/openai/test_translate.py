"""Request translation: OpenAI bodies to RouterService.Generate requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openai_gateway.errors import ApiError
from openai_gateway.translate import Defaults, parse_chat, parse_completion
from tierroute.v1 import common_pb2, router_service_pb2

DEFAULTS = Defaults(max_tokens=64, fallback_mode="buffered")
USER = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> Any:
    return parse_chat({"model": "tierroute-auto", "messages": USER, **fields}, DEFAULTS)


def test_defaults_apply_when_fields_are_absent() -> None:
    parsed = _chat()
    sampling = parsed.generate.sampling
    assert sampling.max_tokens == 64
    assert not sampling.HasField("temperature") and not sampling.HasField("seed")
    assert parsed.generate.options.fallback_mode == router_service_pb2.FALLBACK_MODE_BUFFERED
    assert not parsed.stream and not parsed.include_usage


def test_roles_and_text_parts() -> None:
    parsed = _chat(
        messages=[
            {"role": "developer", "content": "rules"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "again"},
        ]
    )
    messages = parsed.generate.prompt.chat.messages
    assert [m.role for m in messages] == [
        common_pb2.ROLE_SYSTEM,
        common_pb2.ROLE_USER,
        common_pb2.ROLE_ASSISTANT,
        common_pb2.ROLE_USER,
    ]
    assert messages[1].content == "ab"


def test_max_completion_tokens_wins_and_options_travel() -> None:
    parsed = _chat(
        max_tokens=10,
        max_completion_tokens=20,
        stop="END",
        stream=True,
        stream_options={"include_usage": True},
        tierroute={
            "fallback_mode": "early_window",
            "fallback_threshold": 0.4,
            "max_cost_usd": 0.01,
        },
    )
    assert parsed.generate.sampling.max_tokens == 20
    assert list(parsed.generate.sampling.stop) == ["END"]
    options = parsed.generate.options
    assert options.fallback_mode == router_service_pb2.FALLBACK_MODE_EARLY_WINDOW
    assert options.fallback_threshold == pytest.approx(0.4)
    assert options.max_cost_usd == pytest.approx(0.01)
    assert parsed.stream and parsed.include_usage


def test_neutral_values_of_unsupported_fields_are_accepted() -> None:
    parsed = _chat(
        n=1,
        user="u1",
        logprobs=False,
        tools=[],
        presence_penalty=0,
        frequency_penalty=0.0,
        response_format={"type": "text"},
    )
    assert parsed.model == "tierroute-auto"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": -1}, "seed"),
        ({"stop": [""]}, "stop"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"stream": "yes"}, "stream"),
        ({"tierroute": {"colour": "red"}}, "tierroute.colour"),
        ({"tierroute": {"fallback_threshold": 2}}, "fallback_threshold"),
    ],
)
def test_invalid_fields_name_their_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        _chat(**fields)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_body_must_be_an_object() -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat(["not", "an", "object"], DEFAULTS)
    assert caught.value.code == "invalid_json"


def test_completion_prompt_forms() -> None:
    assert parse_completion({"model": "m", "prompt": "x"}, DEFAULTS).generate.prompt.text == "x"
    assert parse_completion({"model": "m", "prompt": ["y"]}, DEFAULTS).generate.prompt.text == "y"
    for body, param in (
        ({"model": "m", "prompt": [1, 2]}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": "x", "echo": True}, "echo"),
        ({"model": "m", "prompt": "x", "suffix": "s"}, "suffix"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of"),
    ):
        with pytest.raises(ApiError) as caught:
            parse_completion(body, DEFAULTS)
        assert caught.value.param == param


@given(
    temperature=st.floats(min_value=0, max_value=2),
    top_p=st.floats(min_value=0.001, max_value=1),
    max_tokens=st.integers(min_value=1, max_value=10_000),
    stop=st.lists(st.text(min_size=1, max_size=5), max_size=8),
)
def test_valid_sampling_round_trips(
    temperature: float, top_p: float, max_tokens: int, stop: list[str]
) -> None:
    sampling = _chat(temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stop)
    sent = sampling.generate.sampling
    assert (sent.temperature, sent.top_p, sent.max_tokens) == (temperature, top_p, max_tokens)
    assert list(sent.stop) == stop


def test_completions_ask_for_raw_text_and_chats_do_not() -> None:
    # The completions API continues the text as written: no chat template on any tier.
    completion = parse_completion({"model": "m", "prompt": "def f("}, DEFAULTS).generate.prompt
    assert completion.raw and completion.text == "def f("
    chat = parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, DEFAULTS)
    assert not chat.generate.prompt.raw

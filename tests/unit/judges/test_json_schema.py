"""The json_schema judge: the answer's JSON validated against the caller's schema."""

from __future__ import annotations

import pytest

from tierroute.judges import JsonSchemaJudge, JudgeCase, JudgeInputError, check_schema
from tierroute.judges.json_schema import answer_json

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JUDGE = JsonSchemaJudge()


async def _judge(answer: str, schema: dict[str, object] | None = SCHEMA) -> tuple[bool, bool]:
    verdict = await JUDGE.judge(JudgeCase("give json", answer, json_schema=schema))
    assert verdict.judge == "json_schema"
    return verdict.decided, verdict.acceptable


async def test_valid_answers_pass() -> None:
    assert await _judge('{"name": "Ada", "age": 36}') == (True, True)
    fenced = 'Here it is:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?'
    assert await _judge(fenced) == (True, True)
    two_blocks = '```json\n{"name": 1}\n```\nfixed:\n```json\n{"name": "A", "age": 1}\n```'
    assert await _judge(two_blocks) == (True, True)  # the last block counts


async def test_invalid_or_unparseable_answers_fail() -> None:
    assert await _judge('{"name": "Ada", "age": -1}') == (True, False)
    assert await _judge('{"name": "Ada"}') == (True, False)
    assert await _judge('{"name": "Ada", "age": 3, "x": 1}') == (True, False)
    assert await _judge("name: Ada, age: 36") == (True, False)
    assert await _judge('```json\n{"name": "Ada", \n```') == (True, False)


async def test_reason_names_the_place_not_the_value() -> None:
    verdict = await JUDGE.judge(
        JudgeCase("q", '{"name": "secret-value", "age": "x"}', json_schema=SCHEMA)
    )
    assert "age" in verdict.reason and "secret-value" not in verdict.reason


async def test_undecided_without_a_valid_schema() -> None:
    assert await _judge("{}", None) == (False, False)
    assert await _judge("{}", {"type": "no-such-type"}) == (False, False)


def test_check_schema() -> None:
    check_schema(SCHEMA)
    with pytest.raises(JudgeInputError) as caught:
        check_schema({"type": 12})
    assert caught.value.field == "json_schema"


def test_answer_json() -> None:
    assert answer_json("[1, 2]") == (True, [1, 2])
    assert answer_json("null") == (True, None)
    assert answer_json("nothing") == (False, None)

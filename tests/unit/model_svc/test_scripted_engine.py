"""The scripted engine and the flags of ``python -m model_svc.scripted_server``: each knob does
what it says (answers, rules, confidence, delays, events, unfinished count, a scripted death)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_svc.engines.base import Delta, FinishReason, GenerationRequest, PromptInput
from model_svc.engines.scripted import (
    DEFAULT_WORDS,
    WARM_UP_ID,
    Rule,
    Script,
    ScriptedEngine,
    split_tokens,
)
from model_svc.scripted_server import parse_args, script_from

pytestmark = pytest.mark.timeout(30)


async def _run(
    engine: ScriptedEngine, prompt: str, max_tokens: int = 100, request_id: str = "r1"
) -> list[Delta]:
    ids = await engine.render_prompt(PromptInput(text=prompt))
    request = GenerationRequest(request_id, ids, max_tokens)
    return [delta async for delta in engine.generate(request)]


def _text(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


async def test_default_answer_stops_and_a_short_max_tokens_cuts_it() -> None:
    engine = ScriptedEngine(Script(token_delay=0))
    await engine.start()
    deltas = await _run(engine, "What is it?")
    assert _text(deltas) == "".join(DEFAULT_WORDS)
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(DEFAULT_WORDS) - 1)
    assert deltas[-1].finish_reason is FinishReason.STOP
    cut = await _run(engine, "What is it?", max_tokens=2)
    assert _text(cut) == "The answer" and cut[-1].finish_reason is FinishReason.LENGTH


async def test_words_repeat_up_to_tokens() -> None:
    engine = ScriptedEngine(Script(words=("a", "b"), tokens=5, token_delay=0))
    deltas = await _run(engine, "x")
    assert _text(deltas) == "ababa" and len(deltas) == 5


async def test_unsure_words_lower_the_logprob_and_prompt_tokens_count_words() -> None:
    engine = ScriptedEngine(Script(unsure=("hard",), token_delay=0))
    assert len(await engine.render_prompt(PromptInput(text="a hard one"))) == 4
    sure = await _run(engine, "an easy one")
    unsure = await _run(engine, "a hard one")
    assert {lp for d in sure for lp in d.logprobs} == {-0.02}
    assert {lp for d in unsure for lp in d.logprobs} == {-2.5}


async def test_rules_come_first_in_order_and_a_catch_all_takes_the_rest() -> None:
    rules = (
        Rule("add", ("return a + b\n",), -0.1),
        Rule("", split_tokens("no idea"), -3.0),
    )
    engine = ScriptedEngine(Script(rules=rules, unsure=("add",), token_delay=0))
    added = await _run(engine, "def add(a, b):")
    assert _text(added) == "return a + b\n" and added[0].logprobs == (-0.1,)
    other = await _run(engine, "hello")
    assert _text(other) == "no idea" and other[-1].logprobs == (-3.0,)


async def test_first_token_and_slow_delays() -> None:
    engine = ScriptedEngine(
        Script(first_token_delay=0.15, token_delay=0, slow=("slow",), slow_token_delay=0.05)
    )
    started = time.monotonic()
    await _run(engine, "quick", max_tokens=3)
    assert 0.14 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    await _run(engine, "a slow one", max_tokens=3)
    assert 0.14 <= time.monotonic() - started < 1.0  # 3 x 50 ms


async def test_events_and_unfinished_count(tmp_path: Path) -> None:
    events = tmp_path / "events"
    engine = ScriptedEngine(Script(events=events, token_delay=0))
    ids = await engine.render_prompt(PromptInput(text="x"))
    await _run(engine, "x", max_tokens=4, request_id=WARM_UP_ID)  # never recorded
    stream = engine.generate(GenerationRequest("cut", ids, 100))
    await anext(stream)
    assert engine.num_unfinished_requests() == 1
    await stream.aclose()
    assert engine.num_unfinished_requests() == 0
    await _run(engine, "x", request_id="whole")
    assert events.read_text().splitlines() == [
        "start cut",
        "abort cut",
        "start whole",
        "finish whole",
    ]


async def test_lifecycle_and_info() -> None:
    engine = ScriptedEngine(Script(model_name="m", max_model_len=77))
    assert not engine.is_alive()
    await engine.start()
    assert engine.is_alive() and engine.info.model_name == "m" and engine.info.max_model_len == 77
    await engine.shutdown()
    assert not engine.is_alive()


def test_die_after_kills_its_own_process() -> None:
    code = (
        "import asyncio\n"
        "from model_svc.engines.base import GenerationRequest\n"
        "from model_svc.engines.scripted import Script, ScriptedEngine\n"
        "async def main():\n"
        "    engine = ScriptedEngine(Script(die_after=2, token_delay=0))\n"
        "    async for delta in engine.generate(GenerationRequest('r', [1], 10)):\n"
        "        print(delta.text, flush=True)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["The", "answer"]


def test_split_tokens_round_trips() -> None:
    for text in ("The answer is 42.", "  def f():\n    return 1\n", "one"):
        assert "".join(split_tokens(text)) == text
    assert split_tokens("The answer is") == ("The", " answer", " is")


def test_invalid_scripts_are_refused() -> None:
    for bad in ({"words": ()}, {"tokens": 0}, {"token_delay": -1.0}, {"die_after": -1}):
        with pytest.raises(ValueError):
            Script(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Rule("x", (), -1.0)


def test_flags_build_the_script(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rows = [
        {"contains": "a", "tokens": ["x\n", "y\n"], "logprob": -0.5},
        {"contains": "", "answer": "no idea", "logprob": -3},
    ]
    rules.write_text(json.dumps(rows))
    argv = ["--tier", "small", "--port", "1", "--metrics-port", "2", "--answer", "It is M."]
    argv += ["--tokens", "9", "--unsure", "hard", "--unsure", "tough", "--die-after", "3"]
    argv += ["--rules", str(rules), "--slow", "slow", "--max-model-len", "4096"]
    script = script_from(parse_args(argv))
    assert script.words == ("It", " is", " M.") and script.tokens == 9
    assert script.unsure == ("hard", "tough") and script.slow == ("slow",)
    assert script.die_after == 3 and script.max_model_len == 4096
    assert script.rules == (
        Rule("a", ("x\n", "y\n"), -0.5),
        Rule("", ("no", " idea"), -3.0),
    )
    default = script_from(parse_args(["--tier", "t", "--port", "1", "--metrics-port", "2"]))
    assert default == Script()

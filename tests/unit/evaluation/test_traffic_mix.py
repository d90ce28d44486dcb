"""The shipped traffic mix: composition, format, reproducibility, correct gold answers."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tierroute.answers import normalise_number
from tierroute_tools.evaluation import traffic_mix
from tierroute_tools.evaluation.traffic_mix import build_mix, composition

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "tasks" / "traffic_mix.jsonl"


def test_shipped_file_is_what_the_script_makes() -> None:
    expected = "".join(json.dumps(i.to_json(), ensure_ascii=False) + "\n" for i in build_mix())
    assert SHIPPED.read_text(encoding="utf-8") == expected


def test_composition_of_the_shipped_mix() -> None:
    rows = [json.loads(line) for line in SHIPPED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    assert len({row["id"] for row in rows}) == len(rows)
    simple = sum(row["source"].startswith("mix/simple/") for row in rows)
    assert 0.65 <= simple / len(rows) <= 0.75
    for row in rows:
        assert set(row) == {"id", "prompt", "answer", "kind", "source"}
        assert row["kind"] in ("number", "code")
        if row["kind"] == "number":
            assert normalise_number(row["answer"]) == row["answer"]
        else:
            assert row["id"].startswith("HumanEval/") and row["answer"] == ""
            assert "```python" in row["prompt"]


def test_prompts_do_not_repeat() -> None:
    items = build_mix(300, seed=3)
    assert len({item.prompt for item in items}) == len(items)


@pytest.mark.parametrize("template", list(traffic_mix.SIMPLE.values()))
def test_simple_templates_have_one_step_answers(template: traffic_mix.Template) -> None:
    rng = random.Random(0)
    for _ in range(50):
        prompt, answer = template(rng)
        numbers = [int(n) for n in re.findall(r"\d+", prompt)]
        assert len(numbers) == 2
        a, b = numbers
        assert answer in (a * b, a + b, abs(a - b), max(a, b) // min(a, b))
        assert answer >= 0


@pytest.mark.parametrize("template", list(traffic_mix.HARD.values()))
def test_hard_templates_have_non_negative_integer_answers(template: traffic_mix.Template) -> None:
    rng = random.Random(1)
    for _ in range(50):
        prompt, answer = template(rng)
        assert isinstance(answer, int) and answer >= 0
        assert len(re.findall(r"\d+", prompt)) >= 3  # more than one step


def test_worked_examples() -> None:
    assert traffic_mix._trays(_Fixed([3, 12, 10])) == (
        "A baker makes 3 trays of 12 cookies each and sells 10 cookies. How many cookies are left?",
        26,
    )


def test_composition_counts_levels() -> None:
    items = build_mix(20, seed=1)
    counts = composition(items)
    assert counts["simple"] == 14 and counts["hard"] == 6
    assert counts["mix/hard/humaneval"] == 3


def test_rejects_tiny_totals() -> None:
    with pytest.raises(ValueError, match="total"):
        build_mix(5)


class _Fixed(random.Random):
    """A random.Random whose randint returns fixed integers in order."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(0)
        self._values = iter(values)

    def randint(self, a: int, b: int) -> int:
        low, high = a, b
        value = next(self._values)
        assert low <= value <= high
        return value

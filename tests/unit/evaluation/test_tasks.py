"""The live arithmetic task: deterministic, gold answers right, kinds mixed."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tierroute_tools.evaluation.live import read_items, write_items
from tierroute_tools.evaluation.tasks import ARITHMETIC_KINDS, SHOTS, arithmetic_items


def test_items_are_reproducible_and_right(tmp_path: Path) -> None:
    items = arithmetic_items(50, seed=4)
    assert items == arithmetic_items(50, seed=4)
    assert items != arithmetic_items(50, seed=5)
    assert Counter(i.source for i in items) == {f"arithmetic/{k}": 10 for k in ARITHMETIC_KINDS}
    for item in items:
        assert item.prompt.startswith(SHOTS) and item.prompt.endswith("\nA:")
        a, op, b = re.findall(r"Q: (\d+) ([+*-]) (\d+)\nA:$", item.prompt)[0]
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert item.answer == str(expected) and item.kind == "number"
    assert len({item.prompt for item in arithmetic_items(300, seed=0)}) == 300
    write_items(tmp_path / "t.jsonl", items)
    assert read_items(tmp_path / "t.jsonl") == items


def test_bad_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "1", "prompt": "p", "answer": "x", "kind": "number"}\n')
    with pytest.raises(ValueError, match="not a number"):
        read_items(path)
    path.write_text('{"id": "1", "prompt": "p", "answer": "1", "kind": "essay"}\n')
    with pytest.raises(ValueError, match="kind"):
        read_items(path)
    row = '{"id": "1", "prompt": "p", "answer": "1", "kind": "number"}\n'
    path.write_text(row + row)
    with pytest.raises(ValueError, match="unique"):
        read_items(path)
    with pytest.raises(ValueError):
        arithmetic_items(0)
    with pytest.raises(ValueError, match="no new question"):
        arithmetic_items(400)  # one-digit products: only 64 distinct questions

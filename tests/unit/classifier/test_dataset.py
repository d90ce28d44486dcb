"""Labels and the split by prompt: fixed-seed, order-independent, no prompt on two sides."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from tierroute.outcomes import STRONG_MODEL, WEAK_MODEL, Outcome, load_routellm, prompt_key
from tierroute_tools.classifier_training.dataset import (
    Dataset,
    assign_split,
    build_dataset,
    outcomes_sha256,
)
from tierroute_tools.classifier_training.near_duplicates import (
    merge_near_duplicates,
    near_duplicate_groups,
)


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return load_routellm()


@pytest.fixture(scope="module")
def dataset(outcomes: list[Outcome]) -> Dataset:
    return build_dataset(outcomes)


def test_no_prompt_in_two_splits(outcomes: list[Outcome], dataset: Dataset) -> None:
    splits_of: dict[str, set[str]] = defaultdict(set)
    for example in dataset.examples:
        splits_of[prompt_key(example.prompt)].add(example.split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    # ... and every raw row, duplicates included, maps to its prompt's one split, unless its
    # prompt was merged into a near-duplicate (then it is not an example at all).
    merged = set()
    for outcome in outcomes:
        key = prompt_key(outcome.prompt)
        if key in splits_of:
            assert splits_of[key] == {assign_split(outcome.prompt, 0)}
        else:
            merged.add(key)
    assert len(merged) == dataset.merged_near_duplicates > 0


def test_no_near_duplicates_straddle_the_split(outcomes: list[Outcome], dataset: Dataset) -> None:
    # What the split is made of has no near-duplicate pair left: none can sit on two sides.
    rows = [Outcome(e.prompt, {"m": 0.0}, e.source) for e in dataset.examples]
    assert merge_near_duplicates(rows).pairs == 0
    # Without the merge they do straddle it (the same question, other numbers or punctuation).
    exact_only = build_dataset(outcomes, near_duplicate_threshold=None)
    examples = exact_only.examples
    groups = near_duplicate_groups([e.prompt for e in examples])
    straddling = [g for g in groups if len({examples[i].split for i in g}) > 1]
    assert exact_only.near_duplicate_pairs == 0 and len(straddling) > 0
    assert dataset.near_duplicate_pairs == sum(len(g) * (len(g) - 1) // 2 for g in groups)
    assert dataset.merged_near_duplicates == len(examples) - len(groups)


def test_split_sizes_follow_the_fractions(dataset: Dataset) -> None:
    sizes = dataset.sizes()
    total = sum(sizes.values())
    assert total == 15311 - dataset.merged_near_duplicates == 15174
    assert sizes["train"] / total == pytest.approx(0.70, abs=0.02)
    assert sizes["validation"] / total == pytest.approx(0.15, abs=0.02)
    assert sizes["test"] / total == pytest.approx(0.15, abs=0.02)


def test_split_is_fixed_by_seed_and_independent_of_order(
    outcomes: list[Outcome], dataset: Dataset
) -> None:
    shuffled = list(outcomes)
    random.Random(7).shuffle(shuffled)
    again = build_dataset(shuffled)
    by_prompt = {prompt_key(e.prompt): e.split for e in dataset.examples}
    assert {prompt_key(e.prompt): e.split for e in again.examples} == by_prompt
    assert again.data_sha256 == dataset.data_sha256
    other_seed = build_dataset(outcomes, seed=1)
    moved = sum(by_prompt[prompt_key(e.prompt)] != e.split for e in other_seed.examples)
    assert moved > 0.3 * len(other_seed.examples)


def test_label_is_weak_within_margin_of_strong() -> None:
    rows = [
        Outcome("a", {STRONG_MODEL: 0.85, WEAK_MODEL: 0.8}, "mt_bench/x"),
        Outcome("b", {STRONG_MODEL: 1.0, WEAK_MODEL: 0.0}, "mmlu/x"),
        Outcome("c", {STRONG_MODEL: 0.0, WEAK_MODEL: 0.0}, "mmlu/x"),
        Outcome("d", {STRONG_MODEL: 1.0}, "mmlu/x"),  # no weak outcome: skipped
    ]
    labels = {e.prompt: e.label for e in build_dataset(rows, margin=0.1).examples}
    assert labels == {"a": True, "b": False, "c": True}
    strict = {e.prompt: e.label for e in build_dataset(rows, margin=0.0).examples}
    assert strict["a"] is False


def test_positive_rate_is_the_weak_models_share_of_good_enough(dataset: Dataset) -> None:
    rates = dataset.positive_rate()
    assert all(0.78 < rate < 0.84 for rate in rates.values())


def test_data_hash_changes_with_the_data(outcomes: list[Outcome]) -> None:
    changed = [*outcomes[:-1], Outcome(outcomes[-1].prompt, {STRONG_MODEL: 0.0}, "x")]
    assert outcomes_sha256(changed) != outcomes_sha256(outcomes)


def test_fractions_are_validated(outcomes: list[Outcome]) -> None:
    with pytest.raises(ValueError):
        build_dataset(outcomes[:10], fractions=(0.5, 0.5, 0.5))

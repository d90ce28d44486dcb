"""The quality monitor: served quality relative to all-largest, with confidence bounds, and savings.

Model: a request the largest tier served contributes 1 to the quality ratio (it got the
largest tier's answer); one a cheaper tier served contributes its judged acceptability (0 or
1). The estimate is the ``sample_weight``-weighted mean over the judged samples; its bounds
are one-sided ``1 - delta`` Wilson score bounds at Kish's effective sample size, so "lower
bound >= target" reads "quality ratio >= target with confidence 1 - delta". Computed overall,
per judged tier and per route.

Requests routed straight to the largest tier are never shadowed (there is no cheaper answer
to judge); their share of the traffic, when the caller supplies it, enters the overall figure
as known ones. Savings are net of shadow and judge costs: over the sampled population the
served and baseline costs are weighted (they estimate that population's spend) while the
shadow and judge costs are counted as spent, unweighted; for the whole traffic the caller
supplies its ledger's totals (:class:`CostTotals`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from router_svc.quality.samples import JudgedSample
from router_svc.quality.stats import effective_size, wilson_bounds


@dataclass(frozen=True)
class QualityEstimate:
    """A quality ratio estimate, its one-sided ``1 - delta`` bounds and the evidence behind it.

    With no samples the estimate is NaN and the bounds are (0, 1).
    """

    estimate: float
    lower: float
    upper: float
    samples: int
    effective_samples: float


@dataclass(frozen=True)
class CostTotals:
    """Spend over some set of requests (US dollars)."""

    served_cost_usd: float
    baseline_cost_usd: float
    """What the same requests would have cost on the largest tier."""
    shadow_cost_usd: float = 0.0
    judge_cost_usd: float = 0.0


def savings_ratio(totals: CostTotals) -> float | None:
    """``1 - (served + shadow + judge) / baseline``; None without a positive baseline."""
    if totals.baseline_cost_usd <= 0:
        return None
    spent = totals.served_cost_usd + totals.shadow_cost_usd + totals.judge_cost_usd
    return 1.0 - spent / totals.baseline_cost_usd


@dataclass(frozen=True)
class QualityReport:
    """The monitor's view of the served quality and the savings behind it."""

    overall: QualityEstimate
    by_tier: Mapping[str, QualityEstimate] = field(hash=False)
    """Keyed by the cheaper tier that was judged."""
    by_route: Mapping[str, QualityEstimate] = field(hash=False)
    target: float
    delta: float
    sample_costs: CostTotals
    """Weighted served/baseline spend of the sampled population, actual shadow/judge spend."""
    savings: float | None
    """Savings ratio of the sampled population, net of shadow and judge costs."""
    traffic_savings: float | None
    """Savings ratio of the caller's whole-traffic totals, when supplied."""

    @property
    def meets_target(self) -> bool:
        """Whether the overall lower bound reaches the target."""
        return self.overall.lower >= self.target


class QualityMonitor:
    """Computes :class:`QualityReport` from judged samples (pure; the caller schedules it)."""

    def __init__(self, largest: str, target: float, delta: float) -> None:
        if not 0.0 < target <= 1.0:
            raise ValueError("target must be in (0, 1]")
        if not 0.0 < delta < 1.0:
            raise ValueError("delta must be in (0, 1)")
        self._largest = largest
        self._target = target
        self._delta = delta

    def contribution(self, sample: JudgedSample) -> float:
        """The sample's quality ratio contribution: 1 if the largest tier served it, else its
        judged acceptability."""
        if sample.served_tier == self._largest:
            return 1.0
        return 1.0 if sample.acceptable else 0.0

    def estimate(
        self, samples: Sequence[JudgedSample], direct_largest_share: float = 0.0
    ) -> QualityEstimate:
        """The quality ratio of ``samples``; ``direct_largest_share`` of the traffic (requests
        that went straight to the largest tier, never sampled) counts as known ones."""
        if not 0.0 <= direct_largest_share <= 1.0:
            raise ValueError("direct_largest_share must be in [0, 1]")
        weights = [s.sample_weight for s in samples]
        total = math.fsum(weights)
        if total <= 0:
            if direct_largest_share >= 1.0:
                return QualityEstimate(1.0, 1.0, 1.0, 0, 0.0)
            return QualityEstimate(math.nan, 0.0, 1.0, 0, 0.0)
        mean = math.fsum(w * self.contribution(s) for w, s in zip(weights, samples, strict=True))
        mean /= total
        n_eff = effective_size(weights)
        lower, upper = wilson_bounds(mean, n_eff, self._delta)
        share = direct_largest_share

        def mix(x: float) -> float:
            # The unsampled share is known exactly, so the bounds map linearly.
            return share + (1.0 - share) * x

        return QualityEstimate(mix(mean), mix(lower), mix(upper), len(samples), n_eff)

    def sample_costs(self, samples: Iterable[JudgedSample]) -> CostTotals:
        """Estimated served/baseline spend of the sampled population and the actual
        shadow/judge spend on it."""
        served = baseline = shadow = judge = 0.0
        for s in samples:
            served += s.sample_weight * s.served_cost_usd
            baseline += s.sample_weight * s.baseline_cost_usd
            shadow += s.shadow_cost_usd
            judge += s.judge_cost_usd
        return CostTotals(served, baseline, shadow, judge)

    def report(
        self,
        samples: Sequence[JudgedSample],
        *,
        direct_largest_share: float = 0.0,
        traffic: CostTotals | None = None,
    ) -> QualityReport:
        """Overall, per tier and per route quality, and the savings net of shadow and judge."""
        costs = self.sample_costs(samples)
        return QualityReport(
            overall=self.estimate(samples, direct_largest_share),
            by_tier=self._grouped(samples, lambda s: s.tier),
            by_route=self._grouped(samples, lambda s: s.route),
            target=self._target,
            delta=self._delta,
            sample_costs=costs,
            savings=savings_ratio(costs),
            traffic_savings=None if traffic is None else savings_ratio(traffic),
        )

    def _grouped(
        self, samples: Iterable[JudgedSample], key: Callable[[JudgedSample], str]
    ) -> Mapping[str, QualityEstimate]:
        groups: dict[str, list[JudgedSample]] = defaultdict(list)
        for s in samples:
            groups[key(s)].append(s)
        return MappingProxyType({k: self.estimate(v) for k, v in sorted(groups.items())})

"""The cost ledger: prices every finished request, exports it as metrics and one log line.

One JSON line ``request_done`` per Generate call, successful or not: request id, tenant, tier
path, tokens per tier, cost, baseline, savings, the decision, status and latencies. Prompt
text only when ``logging.log_prompts`` is on.

:class:`DailySpend` adds up each tenant's cost in the current UTC day for the spend budgets
(``usd_per_day`` of an API key): a request is refused once the tenant's spend reached its
budget, and charged with its real cost (wasted escalation tokens included) when it ends.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from router_svc.costs import CostBreakdown, Prices, TokenUsage, request_costs
from router_svc.metrics import NONE_TIER, RouterMetrics
from router_svc.policy import RoutingDecision
from tierroute.errors import OverloadedError

_log = structlog.get_logger("router_svc.ledger")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What happened to one Generate call."""

    request_id: str
    tenant: str
    decision: RoutingDecision | None
    """``None`` when the request was refused before a decision."""
    code: str
    """gRPC status name of the call (``OK`` on success)."""
    usages: tuple[TokenUsage, ...]
    served: TokenUsage | None
    escalations: tuple[tuple[str, str, str], ...]
    """``(from_tier, to_tier, cause)`` of each escalation the caller was told about."""
    degraded_reason: str
    ttft_seconds: float | None
    total_seconds: float
    prompt_text: str = ""


class CostLedger:
    """Prices requests with the configured tables and records them."""

    def __init__(
        self,
        metrics: RouterMetrics,
        prices: dict[str, Prices],
        baseline_tier: str,
        log_prompts: bool,
    ) -> None:
        self._metrics = metrics
        self._prices = prices
        self._baseline = prices[baseline_tier]
        self._log_prompts = log_prompts

    @property
    def prices(self) -> dict[str, Prices]:
        """Price table per tier."""
        return self._prices

    def price(self, usages: Sequence[TokenUsage], served: TokenUsage | None) -> CostBreakdown:
        """Cost, baseline and savings of a request."""
        return request_costs(usages, self._prices, self._baseline, served)

    def record(self, record: RequestRecord) -> CostBreakdown:
        """Export ``record`` as metrics and one ``request_done`` log line; returns its costs."""
        costs = self.price(record.usages, record.served)
        m = self._metrics
        served_tier = m.tier(record.served.tier) if record.served is not None else NONE_TIER
        m.child(m.requests, m.code(record.code), served_tier).inc()
        m.duration.observe(record.total_seconds)
        for usage, cost in zip(record.usages, costs.per_tier, strict=True):
            tier = m.tier(usage.tier)
            m.child(m.cost, tier).inc(cost)
            m.child(m.tokens, tier, "prompt").inc(usage.prompt_tokens)
            m.child(m.tokens, tier, "completion").inc(usage.completion_tokens)
        m.baseline_cost.inc(costs.baseline_cost_usd)
        if record.degraded_reason and record.served is not None:
            m.child(m.degraded, served_tier).inc()
        decision = record.decision
        fields: dict[str, object] = {
            "request_id": record.request_id,
            "tenant": record.tenant,
            "code": record.code,
            "served_tier": record.served.tier if record.served is not None else None,
            "tier_path": [u.tier for u in record.usages],
            "tokens": [
                {
                    "tier": u.tier,
                    "prompt": u.prompt_tokens,
                    "completion": u.completion_tokens,
                    "discarded": u.discarded,
                }
                for u in record.usages
            ],
            "cost_usd": costs.cost_usd,
            "baseline_cost_usd": costs.baseline_cost_usd,
            "savings_usd": costs.savings_usd,
            "decision": None
            if decision is None
            else {
                "tier": decision.tier,
                "reason": decision.reason,
                "classifier_score": decision.classifier_score,
                "threshold": decision.threshold,
                "latency_ms": round(decision.latency_seconds * 1000, 3),
            },
            "escalations": [
                {"from": a, "to": b, "cause": cause} for a, b, cause in record.escalations
            ],
            "degraded_reason": record.degraded_reason or None,
            "ttft_ms": None
            if record.ttft_seconds is None
            else round(record.ttft_seconds * 1000, 3),
            "total_ms": round(record.total_seconds * 1000, 3),
        }
        if self._log_prompts and record.prompt_text:
            fields["prompt"] = record.prompt_text
        _log.info("request_done", **fields)
        return costs


class BudgetExhaustedError(OverloadedError):
    """A tenant spent its daily budget; the budget resets at ``resets_at`` (00:00 UTC)."""

    def __init__(
        self,
        tenant: str,
        budget_usd: float,
        spent_usd: float,
        resets_at: dt.datetime,
        retry_after_seconds: float,
    ) -> None:
        super().__init__(
            f"tenant {tenant} spent {spent_usd:.6f} USD of its daily budget of "
            f"{budget_usd:.6f} USD; the budget resets at {resets_at:%Y-%m-%dT%H:%M:%SZ}",
            retry_after_seconds=retry_after_seconds,
        )
        self.tenant = tenant
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.resets_at = resets_at


class DailySpend:
    """Cost per tenant in the current UTC day; a new day starts from zero.

    ``clock`` is wall-clock time in seconds since the epoch (``time.time``); tests pass their
    own. Only authenticated tenants are charged, so the table stays as small as the key list.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._day: dt.date | None = None
        self._spent: dict[str, float] = {}

    def _now(self) -> dt.datetime:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        if now.date() != self._day:
            # Midnight UTC passed: every tenant starts the day with nothing spent.
            self._day = now.date()
            self._spent.clear()
        return now

    def spent(self, tenant: str) -> float:
        """US dollars ``tenant`` spent today (UTC)."""
        self._now()
        return self._spent.get(tenant, 0.0)

    def charge(self, tenant: str, usd: float) -> None:
        """Add a finished request's cost to ``tenant``'s spend of today."""
        self._now()
        if usd > 0:
            self._spent[tenant] = self._spent.get(tenant, 0.0) + usd

    def check(self, tenant: str, budget_usd: float) -> None:
        """Raise :class:`BudgetExhaustedError` when ``tenant`` spent ``budget_usd`` today."""
        now = self._now()
        spent = self._spent.get(tenant, 0.0)
        if spent >= budget_usd:
            midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
            wait = (midnight - now).total_seconds()
            raise BudgetExhaustedError(tenant, budget_usd, spent, midnight, wait)

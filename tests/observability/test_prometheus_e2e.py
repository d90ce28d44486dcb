"""A real Prometheus scraping a real router and two model services, checked against callers.

Three processes on loopback ports: the router (``python -m router_svc``, classifier off: rules, tier
hints and the default tier decide) and, per tier, the real model service over a scripted engine
(``python -m model_svc.scripted_server``: vLLM would add a minute and nothing to what is checked).
Prometheus scrapes all three every second with the shipped recording and alert rules loaded. The
test sends two waves of requests and asserts that what Prometheus recorded equals what the callers
were told (costs, baseline, tiers, decisions, escalations, tokens), that every recording and alert
rule evaluates without error and has a value, that every dashboard query runs, and that one request
id can be followed through the router's and both model services' JSON logs.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.integration.state.redis_server import RedisServer
from tierroute.status import REQUEST_ID_KEY
from tierroute.v1 import common_pb2, router_service_pb2, router_service_pb2_grpc

from .conftest import DOC, ROOT, RULES_DIR, require_tool
from .processes import ServiceProcess
from .prometheus_server import Prometheus, free_port
from .promql import dashboard_queries, metric_names, rules, substitute

PRICES = {"small": (0.15, 0.60), "large": (2.50, 10.00)}
EASY = "What is the capital of France?"
HARD = "Tell me a hard riddle about a river."
CAUSES = {
    router_service_pb2.ESCALATION_CAUSE_LOW_CONFIDENCE: "low_confidence",
    router_service_pb2.ESCALATION_CAUSE_EARLY_WINDOW: "early_window",
    router_service_pb2.ESCALATION_CAUSE_TIER_ERROR: "tier_error",
}
# Series that only exist once something happens that this traffic never does: shadow sampling
# (off by default), failed tier calls, GPUs.
NOT_EXERCISED = {
    "tierroute_router_shadow_requests_total",
    "tierroute_router_shadow_agreement",
    "tierroute_router_shadow_cost_usd_total",
    "tierroute_router_tier_errors_total",
    "namespace:tierroute_router_shadow_agreement:mean_rate1h",
    # TLS is off in this stack; tests/integration/foundation/test_tls_rotation.py reads the
    # gauge from a real /metrics while certificates rotate.
    "tierroute_tls_certificate_expiry_timestamp_seconds",
    # The quality loop (judged samples, monitor, controller) is off in this stack.
    "tierroute_router_quality_ratio",
    "tierroute_router_quality_ratio_lower_bound",
    "tierroute_router_quality_samples",
    "tierroute_router_quality_target",
    "tierroute_router_quality_savings_ratio",
    "tierroute_router_escalation_threshold",
    "tierroute_router_escalation_threshold_samples",
    "tierroute_router_escalation_threshold_pinned",
    "tierroute_router_escalation_threshold_last_change_timestamp_seconds",
    "tierroute_router_judged_samples_total",
    "tierroute_router_judge_cost_usd_total",
    "namespace_tier:tierroute_router_quality_samples:sum",
    "namespace_tier:tierroute_router_quality_ratio:weighted_mean",
    "namespace_tier:tierroute_router_quality_ratio_lower_bound:min",
    "namespace:tierroute_router_quality_target:max",
    "namespace_tier_judge_verdict:tierroute_router_judged_samples:rate1h",
    "namespace_tier:tierroute_router_judged_acceptable:ratio_rate1h",
    "namespace:tierroute_router_quality_cost_usd:rate1h",
    "namespace:tierroute_router_quality_cost_ratio:rate1h",
    "namespace:tierroute_router_net_savings_ratio:rate1h",
}


@dataclass
class Told:
    """What the callers were told, added up over every request."""

    cost: float = 0.0
    baseline: float = 0.0
    cost_by_tier: Counter[str] = field(default_factory=Counter)
    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls_by_tier: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalations: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    escalated_ids: list[str] = field(default_factory=list)
    """Request ids (from ``Routed``) of the requests that escalated."""
    metadata_ids: dict[str, str] = field(default_factory=dict)
    """Routed.request_id -> the ``x-request-id`` response metadata of the same call."""

    @property
    def requests(self) -> int:
        """Requests finished, successfully or not."""
        return sum(self.served.values()) + sum(self.errors.values())


@dataclass
class Stack:
    """Everything running, and what the callers were told."""

    prometheus: Prometheus
    router: ServiceProcess
    models: dict[str, ServiceProcess]
    told: Told


def _router_config(path: Path, models: dict[str, ServiceProcess], redis_url: str) -> Path:
    config = {
        "logging": {"level": "INFO", "json_output": True},
        "tiers": [
            {
                "name": name,
                "endpoints": [service.target],
                "input_usd_per_mtok": PRICES[name][0],
                "output_usd_per_mtok": PRICES[name][1],
                "timeout_seconds": 10,
            }
            for name, service in models.items()
        ],
        "classifier": {"enabled": False},
        "resilience": {"health_check_interval_seconds": 1},
        # Shared state in a real Redis, as with several replicas: its metrics are exported.
        "state": {"backend": "redis", "url": redis_url},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def _generate(
    stub: router_service_pb2_grpc.RouterServiceStub,
    told: Told,
    text: str,
    hint: str = "",
    request_id: str = "",
) -> None:
    request = router_service_pb2.RouterServiceGenerateRequest(
        prompt=common_pb2.Prompt(text=text),
        sampling=common_pb2.SamplingParams(max_tokens=16),
        options=router_service_pb2.RouteOptions(tier_hint=hint),
        request_id=request_id,
    )
    call = stub.Generate(request, timeout=20)
    routed_id = ""
    try:
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "routed":
                told.decisions[(event.routed.decision.tier, event.routed.decision.reason)] += 1
                routed_id = event.routed.request_id
                metadata = dict(await call.initial_metadata() or ())
                told.metadata_ids[routed_id] = str(metadata.get(REQUEST_ID_KEY, ""))
            elif kind == "escalated":
                e = event.escalated
                told.escalations[(e.from_tier, e.to_tier, CAUSES[e.cause])] += 1
                told.escalated_ids.append(routed_id)
            elif kind == "finished":
                f = event.finished
                told.served[f.served_tier] += 1
                told.cost += f.cost_usd
                told.baseline += f.baseline_cost_usd
                for usage in f.tier_usage:
                    told.cost_by_tier[usage.tier] += usage.cost_usd
                    told.calls_by_tier[usage.tier] += 1
                    told.tokens[(usage.tier, "prompt")] += usage.usage.prompt_tokens
                    told.tokens[(usage.tier, "completion")] += usage.usage.completion_tokens
    except grpc.aio.AioRpcError as error:
        told.errors[error.code().name] += 1


async def _wave(stub: router_service_pb2_grpc.RouterServiceStub, told: Told) -> None:
    for _ in range(4):
        await _generate(stub, told, EASY)
    for _ in range(2):
        await _generate(stub, told, HARD)
    await _generate(stub, told, EASY, hint="large", request_id=f"caller-{told.requests}")
    await _generate(stub, told, "")  # INVALID_ARGUMENT: the prompt is required


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("e2e")
    models: dict[str, ServiceProcess] = {}
    router: ServiceProcess | None = None
    prometheus: Prometheus | None = None
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        metrics_ports = {}
        for tier in PRICES:
            port, metrics_ports[tier] = free_port(), free_port()
            args = ["--tier", tier, "--port", str(port), "--metrics-port", str(metrics_ports[tier])]
            args += ["--max-streams", "8"]
            if tier == "small":
                args += ["--unsure", "hard"]  # hard prompts score low and escalate
            models[tier] = ServiceProcess(
                "model_svc.scripted_server", args, port, workdir / f"{tier}.log", ROOT
            )
        port, router_metrics = free_port(), free_port()
        config = _router_config(workdir / "router.yaml", models, redis.url)
        router = ServiceProcess(
            "router_svc",
            [
                *("--config", str(config), "--host", "127.0.0.1"),
                *("--port", str(port), "--metrics-port", str(router_metrics)),
            ],
            port,
            workdir / "router.log",
            ROOT,
        )
        for service in [*models.values(), router]:
            await service.wait_serving()
        prometheus = Prometheus(
            binary,
            workdir,
            jobs={
                "tierroute-router": [f"127.0.0.1:{router_metrics}"],
                "tierroute-model": [f"127.0.0.1:{port}" for port in metrics_ports.values()],
            },
            rule_files=[RULES_DIR / "recording.yaml", RULES_DIR / "alerts.yaml"],
        )
        await prometheus.wait_ready()
        await prometheus.wait_for("up", lambda s: len(s) == 3 and all(v == 1 for _, v in s))
        told = Told()
        async with grpc.aio.insecure_channel(router.target) as channel:
            stub = router_service_pb2_grpc.RouterServiceStub(channel)  # type: ignore[no-untyped-call]
            # Two waves with a scrape between them: a series created by the first wave has an
            # increase within the rate windows once the second wave is scraped.
            for _ in range(2):
                await _wave(stub, told)
                # Each target is scraped on its own schedule: wait until both sides are in.
                await prometheus.wait_for_value(
                    "sum(tierroute_router_requests_total)", told.requests
                )
                await prometheus.wait_for_value(
                    'sum(tierroute_model_requests_total{code="OK"})',
                    sum(told.calls_by_tier.values()),
                )
            # Recording rules read the last scrape only from their next evaluation on.
            await prometheus.wait_rules_evaluated_after(time.time())
        yield Stack(prometheus, router, models, told)
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process in [router, *models.values()]:
            if process is not None:
                process.stop()
        redis.stop()


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def _by(prometheus: Prometheus, expr: str, *labels: str) -> dict[Any, float]:
    """Non-zero samples of ``expr`` keyed by the values of ``labels`` (a tuple if several)."""
    result: dict[Any, float] = {}
    for metric, value in await prometheus.query(expr):
        key = tuple(metric.get(label, "") for label in labels)
        if value != 0:
            result[key[0] if len(labels) == 1 else key] = value
    return result


async def test_the_traffic_exercised_every_path(stack: Stack) -> None:
    told = stack.told
    assert told.served["small"] > 0 and told.served["large"] > 0, told.served
    assert sum(told.escalations.values()) > 0, "no request escalated"
    assert told.errors == Counter({"INVALID_ARGUMENT": 2})


async def test_cost_counters_equal_the_sum_of_finished_costs(stack: Stack) -> None:
    p, told = stack.prometheus, stack.told
    assert told.cost > 0
    assert _close(await p.value("sum(tierroute_router_cost_usd_total)"), told.cost)
    assert _close(await p.value("sum(tierroute_router_baseline_cost_usd_total)"), told.baseline)
    by_tier = await _by(p, "tierroute_router_cost_usd_total", "tier")
    assert by_tier.keys() == told.cost_by_tier.keys()
    for tier, cost in told.cost_by_tier.items():
        assert _close(by_tier[tier], cost), tier


async def test_requests_and_decisions_by_tier_agree_with_callers(stack: Stack) -> None:
    p, told = stack.prometheus, stack.told
    served = await _by(p, 'tierroute_router_requests_total{code="OK"}', "served_tier")
    assert served == dict(told.served)
    errors = await _by(p, 'tierroute_router_requests_total{code!="OK"}', "code")
    assert errors == dict(told.errors)
    decisions = await _by(p, "tierroute_router_decisions_total", "tier", "reason")
    assert decisions == dict(told.decisions)
    # Every routed request was decided once; each is served by its tier or escalated from it.
    decided = Counter[str]()
    for (tier, _), count in told.decisions.items():
        decided[tier] += count
    served_or_left = Counter(told.served)
    for (source, target, _), count in told.escalations.items():
        served_or_left[target] -= count
        served_or_left[source] += count
    assert {tier: n for tier, n in served_or_left.items() if n} == dict(decided)


async def test_escalations_and_tokens_agree_with_callers(stack: Stack) -> None:
    p, told = stack.prometheus, stack.told
    escalations = await _by(
        p, "tierroute_router_escalations_total", "from_tier", "to_tier", "cause"
    )
    assert escalations == dict(told.escalations)
    tokens = await _by(p, "tierroute_router_tokens_total", "tier", "kind")
    assert tokens == {key: float(value) for key, value in told.tokens.items()}


async def test_model_services_saw_what_the_router_paid_for(stack: Stack) -> None:
    p, told = stack.prometheus, stack.told
    calls = await _by(p, 'tierroute_model_requests_total{code="OK"}', "tier")
    assert calls == dict(told.calls_by_tier)
    completion = await _by(p, "tierroute_model_completion_tokens_total", "tier")
    assert completion == {t: float(told.tokens[(t, "completion")]) for t in told.calls_by_tier}
    prompt = await _by(p, "tierroute_model_prompt_tokens_total", "tier")
    assert prompt == {t: float(told.tokens[(t, "prompt")]) for t in told.calls_by_tier}
    assert await _by(p, "tierroute_model_engine_up", "tier") == {"small": 1.0, "large": 1.0}


async def test_every_rule_evaluates_and_every_record_has_a_value(stack: Stack) -> None:
    p = stack.prometheus
    records = [rule["record"] for rule in rules(RULES_DIR / "recording.yaml")]
    alerts = [rule["alert"] for rule in rules(RULES_DIR / "alerts.yaml")]
    for record in records:
        if record in NOT_EXERCISED:
            continue
        await p.wait_for(record, bool)
    reply = await p.get("/api/v1/rules")
    loaded = [rule for group in reply["data"]["groups"] for rule in group["rules"]]
    assert sorted(r["name"] for r in loaded) == sorted(records + alerts)
    for rule in loaded:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    # No alert has reason to fire here: healthy tiers, no errors beyond the caller's own.
    firing = [rule["name"] for rule in loaded if rule.get("state") == "firing"]
    assert firing == []


async def _recorded_as_computed(p: Prometheus, record: str, formula: str) -> None:
    """A record's recent results equal its formula over the raw counters at the same instants.

    A scrape that starts before an evaluation but lands after it makes that one result differ
    from a later re-computation, so one exact match among the last 20 s of results is required.
    """
    results = [(value, await p.value(formula, at)) for at, value in await p.recent(record, 20)]
    assert results, record
    assert any(math.isclose(got, want, rel_tol=1e-12) for got, want in results), results


async def test_recorded_figures_match_the_raw_counters(stack: Stack) -> None:
    p, told = stack.prometheus, stack.told
    savings = "namespace:tierroute_router_savings_ratio:rate5m"
    await _recorded_as_computed(
        p,
        savings,
        "1 - sum(rate(tierroute_router_cost_usd_total[5m]))"
        " / sum(rate(tierroute_router_baseline_cost_usd_total[5m]))",
    )
    assert 0 < await p.value(savings) < 1
    monthly = "namespace:tierroute_router_projected_monthly_cost_usd:rate1h"
    await _recorded_as_computed(
        p, monthly, "sum(rate(tierroute_router_cost_usd_total[1h])) * 30 * 24 * 3600"
    )
    assert await p.value(monthly) > 0
    assert 0 < await p.value("namespace:tierroute_router_strong_share:rate5m") < 1
    assert await p.value("namespace:tierroute_router_escalation_ratio:rate5m") > 0
    assert await p.value("namespace:tierroute_router_error_ratio:rate5m") == 0
    assert told.errors  # the caller errors above did not count against the SLO


async def test_every_dashboard_query_runs_against_real_data(
    stack: Stack, dashboards: dict[str, dict[str, Any]]
) -> None:
    p = stack.prometheus
    empty = []
    for name, dashboard in dashboards.items():
        for where, expr in dashboard_queries(dashboard):
            samples = await p.query(substitute(expr))  # asserts status "success"
            used = metric_names(expr)
            if (
                not samples
                and not any(m.startswith("DCGM_") for m in used)
                and not (used & NOT_EXERCISED or any(r in expr for r in NOT_EXERCISED))
            ):
                empty.append(f"{name}: {where}: {expr}")
    assert empty == []


async def test_exported_metrics_are_the_catalogued_ones(stack: Stack) -> None:
    samples = await stack.prometheus.query('count by (__name__) ({__name__=~"tierroute_.+"})')
    catalogue = set(re.findall(r"`(tierroute_[a-z_]+)`", DOC.read_text()))
    exported = set()
    for labels, _ in samples:
        name = labels["__name__"]
        if name.endswith("_created"):
            # prometheus_client's creation-time series of a counter or histogram family.
            base = name.removesuffix("_created")
            assert {base, base + "_total"} & catalogue, name
            continue
        exported |= metric_names(name)
    assert exported - catalogue == set(), "exported but not in docs/observability.md"
    assert catalogue - exported - NOT_EXERCISED == set(), "catalogued but never exported"


def _events(process: ServiceProcess, event: str, request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in process.json_lines()
        if line.get("event") == event and line.get("request_id") == request_id
    ]


async def test_one_request_id_follows_through_every_log(stack: Stack) -> None:
    told, router, models = stack.told, stack.router, stack.models
    # Generated by the router when the caller sends none, returned in Routed and metadata.
    assert told.escalated_ids
    assert all(routed == sent for routed, sent in told.metadata_ids.items())
    request_id = told.escalated_ids[0]
    assert len(_events(router, "request_done", request_id)) == 1
    # The escalated request ran on both tiers: one generation line in each model service.
    for tier in ("small", "large"):
        lines = _events(models[tier], "generated", request_id)
        assert len(lines) == 1, (tier, models[tier].log_tail())
        assert lines[0]["tier"] == tier
    # An id chosen by the caller is kept end to end.
    chosen = [rid for rid in told.metadata_ids if rid.startswith("caller-")]
    assert len(chosen) == 2
    for rid in chosen:
        assert len(_events(router, "request_done", rid)) == 1
        assert len(_events(models["large"], "generated", rid)) == 1


async def test_logs_hold_no_prompt_text(stack: Stack) -> None:
    for process in [stack.router, *stack.models.values()]:
        text = process.log_path.read_text()
        assert "request_done" in text or "generated" in text
        for prompt in (EASY, HARD):
            assert prompt not in text, process.log_path.name

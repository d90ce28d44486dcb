"""The "tierroute / Quality" dashboard: is the quality promise held, on what evidence, at what cost.

Rows: the promise at a glance (estimate, lower bound, target, evidence, net savings), the
quality ratio over time with its lower bound against the target (overall and per tier), the
escalation thresholds the controller keeps per cheaper tier, and the judged samples with what
shadow requests and judges cost. Empty until the router's quality loop runs.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.models import dashboard

from observability.panels import (
    NS,
    Layout,
    datasource_variable,
    finish,
    label_variable,
    query,
    stacked,
    stat_panel,
    table_legend,
    threshold_line,
    thresholds,
)

UID = "tierroute-quality"
TITLE = "tierroute / Quality"
# The default promise; the dashed target line reads the router's own target instead.
DEFAULT_TARGET = 0.95
_ALL = 'tier="all"'
_TIERS = 'tier!="all"'


def _dashed(color: str | None = None) -> list[dashboard.DynamicConfigValue]:
    """Override values drawing a series as a dashed line (of a fixed colour when given)."""
    values = [
        dashboard.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        dashboard.DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
        ),
    ]
    if color is not None:
        values.append(
            dashboard.DynamicConfigValue(
                id_val="color", value={"mode": "fixed", "fixedColor": color}
            )
        )
    return values


def _headline(layout: Layout) -> None:
    layout.row("The promise at a glance")
    quality_steps = thresholds((None, "red"), (DEFAULT_TARGET, "green"))
    headline = [
        (
            "Quality vs all-largest",
            "Served quality relative to the largest tier alone, estimated from judged samples "
            "(replicas weighted by their samples).",
            f"namespace_tier:tierroute_router_quality_ratio:weighted_mean{{{NS}, {_ALL}}}",
            "percentunit",
        ),
        (
            "Lower bound",
            "Lower confidence bound of the quality ratio on the least favourable replica: the "
            "promise is shown to hold when this is at or above the target.",
            f"namespace_tier:tierroute_router_quality_ratio_lower_bound:min{{{NS}, {_ALL}}}",
            "percentunit",
        ),
    ]
    for title, description, expr, unit in headline:
        layout.add(stat_panel(title, description, expr, unit).thresholds(quality_steps), 4, 5)
    layout.add(
        stat_panel(
            "Target",
            "The quality ratio the router promises (configuration).",
            f"namespace:tierroute_router_quality_target:max{{{NS}}}",
            "percentunit",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Judged samples",
            "Judged samples behind the overall estimate, all replicas.",
            f"namespace_tier:tierroute_router_quality_samples:sum{{{NS}, {_ALL}}}",
            "short",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Net savings (last hour)",
            "1 - (spend + shadow + judge cost) / all-large cost over the last hour: the savings "
            "once measuring quality is paid for.",
            f"namespace:tierroute_router_net_savings_ratio:rate1h{{{NS}}}",
            "percentunit",
        ).thresholds(thresholds((None, "red"), (0.4, "yellow"), (0.6, "green"))),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Measurement cost (last hour)",
            "Shadow requests and judges as a share of the all-large cost.",
            f"namespace:tierroute_router_quality_cost_ratio:rate1h{{{NS}}}",
            "percentunit",
        ),
        4,
        5,
    )


def _quality(layout: Layout) -> None:
    layout.row("Quality ratio")
    overall = (
        timeseries.Panel()
        .title("Served quality relative to all-largest, with its lower bound and the target")
        .description(
            "Estimate and lower confidence bound of the quality ratio of all judged traffic; "
            "dashed: the router's target. TierrouteQualityBelowTarget fires when the bound "
            "stays under the target for 30 minutes on at least 100 samples."
        )
        .unit("percentunit")
        .legend(table_legend())
        .with_target(
            query(
                f"namespace_tier:tierroute_router_quality_ratio:weighted_mean{{{NS}, {_ALL}}}",
                "{{namespace}} estimate",
            )
        )
        .with_target(
            query(
                f"namespace_tier:tierroute_router_quality_ratio_lower_bound:min{{{NS}, {_ALL}}}",
                "{{namespace}} lower bound",
            )
        )
        .with_target(
            query(f"namespace:tierroute_router_quality_target:max{{{NS}}}", "{{namespace}} target")
        )
        .override_by_regexp(".* target", _dashed("red"))
    )
    layout.add(overall, 16, 9)
    per_tier = (
        timeseries.Panel()
        .title("Quality ratio by serving tier")
        .description("Estimate and lower bound of the answers each tier served.")
        .unit("percentunit")
        .legend(table_legend())
        .with_target(
            query(
                f"namespace_tier:tierroute_router_quality_ratio:weighted_mean{{{NS}, {_TIERS}}}",
                "{{tier}} estimate",
            )
        )
        .with_target(
            query(
                f"namespace_tier:tierroute_router_quality_ratio_lower_bound:min{{{NS}, {_TIERS}}}",
                "{{tier}} lower bound",
            )
        )
        .override_by_regexp(".* lower bound", _dashed())
    )
    layout.add(per_tier, 8, 9)


def _thresholds(layout: Layout) -> None:
    layout.row("Escalation thresholds")
    threshold = (
        timeseries.Panel()
        .title("Escalation threshold in force by tier")
        .description(
            "An answer of a cheaper tier whose escalation score is below its threshold "
            "escalates. The controller raises it while evidence is thin and relaxes it as "
            "judged samples accumulate. Lowest and highest over router replicas."
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .legend(table_legend())
        .with_target(
            query(f"min by (tier) (tierroute_router_escalation_threshold{{{NS}}})", "{{tier}} min")
        )
        .with_target(
            query(f"max by (tier) (tierroute_router_escalation_threshold{{{NS}}})", "{{tier}} max")
        )
    )
    layout.add(threshold, 12, 8)
    evidence = (
        timeseries.Panel()
        .title("Judged samples behind each threshold")
        .description("The controller never moves a threshold on fewer than its minimum.")
        .unit("short")
        .with_target(
            query(
                f"max by (tier) (tierroute_router_escalation_threshold_samples{{{NS}}})",
                "{{tier}}",
            )
        )
    )
    layout.add(evidence, 6, 8)
    since = (
        stat.Panel()
        .title("Since the last threshold change")
        .description("Time since the controller (or an operator) last moved each threshold.")
        .unit("s")
        .with_target(
            query(
                "time() - max by (tier) ("
                f"tierroute_router_escalation_threshold_last_change_timestamp_seconds{{{NS}}} > 0)",
                "{{tier}}",
                instant=True,
            )
        )
    )
    layout.add(since, 6, 4)
    pinned = (
        stat.Panel()
        .title("Pinned by an operator")
        .description("1: an operator pinned the tier's threshold and the controller leaves it.")
        .unit("short")
        .with_target(
            query(
                f"max by (tier) (tierroute_router_escalation_threshold_pinned{{{NS}}})",
                "{{tier}}",
                instant=True,
            )
        )
    )
    layout.add(pinned, 6, 4)


def _evidence(layout: Layout) -> None:
    layout.row("Judged samples and what measuring costs")
    judged = (
        timeseries.Panel()
        .title("Judgments per second by judge and verdict")
        .unit("short")
        .stacking(stacked())
        .fill_opacity(30)
        .legend(table_legend())
        .with_target(
            query(
                "sum by (judge, verdict) "
                f"(rate(tierroute_router_judged_samples_total{{{NS}}}[$__rate_interval]))",
                "{{judge}} {{verdict}}",
            )
        )
    )
    layout.add(judged, 8, 8)
    acceptable = (
        timeseries.Panel()
        .title("Acceptable share of judged answers by tier (1 hour)")
        .description("Decided judgments only: undecided ones count for neither side.")
        .unit("percentunit")
        .with_target(
            query(
                f"namespace_tier:tierroute_router_judged_acceptable:ratio_rate1h{{{NS}}}",
                "{{tier}}",
            )
        )
    )
    layout.add(acceptable, 8, 8)
    spend = (
        timeseries.Panel()
        .title("Shadow and judge spend per second")
        .description("Counted in the net savings, never hidden.")
        .unit("currencyUSD")
        .stacking(stacked())
        .fill_opacity(30)
        .with_target(
            query(
                "sum by (tier) "
                f"(rate(tierroute_router_shadow_cost_usd_total{{{NS}}}[$__rate_interval]))",
                "shadow {{tier}}",
            )
        )
        .with_target(
            query(
                "sum by (judge) "
                f"(rate(tierroute_router_judge_cost_usd_total{{{NS}}}[$__rate_interval]))",
                "judge {{judge}}",
            )
        )
    )
    layout.add(spend, 8, 8)
    savings = (
        timeseries.Panel()
        .title("Savings: gross, net of measuring, and the router's own figure")
        .description(
            "Gross: 1 - spend / all-large cost (1 hour). Net: shadow and judge costs added to "
            "the spend. Router: the quality monitor's savings ratio over its whole period."
        )
        .unit("percentunit")
        .thresholds(thresholds((None, "red"), (0.4, "green")))
        .thresholds_style(threshold_line())
        .with_target(query(f"namespace:tierroute_router_savings_ratio:rate1h{{{NS}}}", "gross"))
        .with_target(query(f"namespace:tierroute_router_net_savings_ratio:rate1h{{{NS}}}", "net"))
        .with_target(query(f"min(tierroute_router_quality_savings_ratio{{{NS}}})", "router"))
    )
    layout.add(savings, 24, 8)


def build() -> dashboard.Dashboard:
    """The Quality dashboard model."""
    layout = Layout()
    _headline(layout)
    _quality(layout)
    _thresholds(layout)
    _evidence(layout)
    builder = (
        dashboard_builders.Dashboard(TITLE)
        .with_variable(datasource_variable())
        .with_variable(label_variable("namespace", "Namespace", "tierroute_router_requests_total"))
    )
    return finish(
        builder,
        layout,
        UID,
        "Served quality relative to all-largest with its confidence bound and target, the "
        "escalation thresholds in force, judged samples and the cost of measuring.",
    )

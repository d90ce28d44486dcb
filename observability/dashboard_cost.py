"""The "tierroute / Cost & savings" dashboard: what routing spends against the all-large baseline.

Rows: savings at a glance (stats from the recording rules), spend per second by tier against
the baseline, cost per request and token volume, and the separately counted shadow sampling.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import timeseries
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

UID = "tierroute-cost"
TITLE = "tierroute / Cost & savings"


def build() -> dashboard.Dashboard:
    """The Cost & savings dashboard model."""
    layout = Layout()

    layout.row("Savings at a glance")
    savings = stat_panel(
        "Savings (last hour)",
        "1 - spend / baseline over the last hour: the share of the all-large cost that routing "
        "saved. Escalated requests count both tiers.",
        f"namespace:tierroute_router_savings_ratio:rate1h{{{NS}}}",
        "percentunit",
    ).thresholds(thresholds((None, "red"), (0.4, "yellow"), (0.6, "green")))
    layout.add(savings, 4, 5)
    projections = [
        (
            "Projected monthly spend",
            "Spend of the last hour extrapolated to 30 days.",
            "namespace:tierroute_router_projected_monthly_cost_usd:rate1h",
        ),
        (
            "Projected monthly savings",
            "Baseline minus spend of the last hour, extrapolated to 30 days.",
            "namespace:tierroute_router_projected_monthly_savings_usd:rate1h",
        ),
        (
            "Projected monthly all-large cost",
            "What the same traffic would cost per 30 days on the largest tier alone.",
            "namespace:tierroute_router_projected_monthly_baseline_cost_usd:rate1h",
        ),
    ]
    for title, description, record in projections:
        layout.add(stat_panel(title, description, f"{record}{{{NS}}}", "currencyUSD"), 4, 5)
    layout.add(
        stat_panel(
            "Spend in range",
            "Total spend over the dashboard's time range, wasted tokens included.",
            f"sum(increase(tierroute_router_cost_usd_total{{{NS}}}[$__range]))",
            "currencyUSD",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "All-large cost in range",
            "What the requests of the time range would have cost on the largest tier alone.",
            f"sum(increase(tierroute_router_baseline_cost_usd_total{{{NS}}}[$__range]))",
            "currencyUSD",
        ),
        4,
        5,
    )

    layout.row("Spend rate")
    spend = (
        timeseries.Panel()
        .title("Spend per second by tier vs the all-large baseline")
        .description(
            "Stacked: what each tier costs per second (tokens wasted on escalation included). "
            "Dashed: the same requests on the largest tier alone."
        )
        .unit("currencyUSD")
        .stacking(stacked())
        .fill_opacity(30)
        .legend(table_legend())
        .with_target(
            query(
                f"sum by (tier) (rate(tierroute_router_cost_usd_total{{{NS}}}[$__rate_interval]))",
                "{{tier}}",
            )
        )
        .with_target(
            query(
                f"sum(rate(tierroute_router_baseline_cost_usd_total{{{NS}}}[$__rate_interval]))",
                "all-large baseline",
            )
        )
        .override_by_name(
            "all-large baseline",
            [
                dashboard.DynamicConfigValue(id_val="custom.stacking", value={"mode": "none"}),
                dashboard.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                dashboard.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
                dashboard.DynamicConfigValue(
                    id_val="color", value={"mode": "fixed", "fixedColor": "red"}
                ),
            ],
        )
    )
    layout.add(spend, 16, 9)
    ratio = (
        timeseries.Panel()
        .title("Savings ratio")
        .description("1 - spend / baseline over 5 minutes and over 1 hour; dashed: 40% target.")
        .unit("percentunit")
        .thresholds(thresholds((None, "red"), (0.4, "green")))
        .thresholds_style(threshold_line())
        .with_target(
            query(f"namespace:tierroute_router_savings_ratio:rate5m{{{NS}}}", "{{namespace}} 5m")
        )
        .with_target(
            query(f"namespace:tierroute_router_savings_ratio:rate1h{{{NS}}}", "{{namespace}} 1h")
        )
    )
    layout.add(ratio, 8, 9)

    layout.row("Per request and per token")
    per_request = (
        timeseries.Panel()
        .title("Cost per successful request vs baseline")
        .description("Average spend per successful request, and the all-large cost of it.")
        .unit("currencyUSD")
        .with_target(
            query(
                f"sum(rate(tierroute_router_cost_usd_total{{{NS}}}[$__rate_interval])) / "
                f'sum(rate(tierroute_router_requests_total{{{NS}, code="OK"}}[$__rate_interval]))',
                "routed",
            )
        )
        .with_target(
            query(
                f"sum(rate(tierroute_router_baseline_cost_usd_total{{{NS}}}[$__rate_interval])) / "
                f'sum(rate(tierroute_router_requests_total{{{NS}, code="OK"}}[$__rate_interval]))',
                "all-large baseline",
            )
        )
    )
    layout.add(per_request, 12, 8)
    tokens = (
        timeseries.Panel()
        .title("Tokens per second by tier and kind")
        .description("Prompt and completion tokens the router paid for, per tier.")
        .unit("short")
        .stacking(stacked())
        .fill_opacity(30)
        .with_target(
            query(
                "sum by (tier, kind) "
                f"(rate(tierroute_router_tokens_total{{{NS}}}[$__rate_interval]))",
                "{{tier}} {{kind}}",
            )
        )
    )
    layout.add(tokens, 12, 8)

    layout.row("Shadow sampling (off by default)")
    shadow_cost = (
        timeseries.Panel()
        .title("Shadow spend per second by tier")
        .description(
            "Cost of asking a second tier for a sample of requests to measure routing accuracy; "
            "counted apart from the spend above."
        )
        .unit("currencyUSD")
        .with_target(
            query(
                "sum by (tier) "
                f"(rate(tierroute_router_shadow_cost_usd_total{{{NS}}}[$__rate_interval]))",
                "{{tier}}",
            )
        )
    )
    layout.add(shadow_cost, 12, 7)
    shadow_requests = (
        timeseries.Panel()
        .title("Shadow requests per second by tier")
        .unit("reqps")
        .with_target(
            query(
                "sum by (tier) "
                f"(rate(tierroute_router_shadow_requests_total{{{NS}}}[$__rate_interval]))",
                "{{tier}}",
            )
        )
    )
    layout.add(shadow_requests, 12, 7)

    builder = (
        dashboard_builders.Dashboard(TITLE)
        .with_variable(datasource_variable())
        .with_variable(label_variable("namespace", "Namespace", "tierroute_router_requests_total"))
    )
    return finish(
        builder,
        layout,
        UID,
        "Spend by tier against the all-large baseline, savings and monthly projections.",
    )

"""The "tierroute / Routing" dashboard: where requests go, why, what escalates, how fast.

Rows: headline stats, the routing mix (by served tier, by decision tier and reason),
escalations, decision latency against its 10 ms budget, and the classifier's score
distribution with the shadow-sample agreement.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, piechart, timeseries
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard

from observability.panels import (
    NS,
    Layout,
    datasource_variable,
    finish,
    label_variable,
    quantile_queries,
    query,
    stacked,
    stat_panel,
    table_legend,
    threshold_line,
    thresholds,
)

UID = "tierroute-routing"
TITLE = "tierroute / Routing"


def _headline(layout: Layout) -> None:
    layout.row("At a glance (last 5 minutes)")
    layout.add(
        stat_panel(
            "Requests per second",
            "Finished router requests of any status.",
            f"namespace:tierroute_router_requests:rate5m{{{NS}}}",
            "reqps",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Strong share",
            'Share of successful requests served by the strong tier (named "large").',
            f"namespace:tierroute_router_strong_share:rate5m{{{NS}}}",
            "percentunit",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Escalation ratio",
            "Escalations per request; the expected band ends at 30%.",
            f"namespace:tierroute_router_escalation_ratio:rate5m{{{NS}}}",
            "percentunit",
        ).thresholds(thresholds((None, "green"), (0.3, "red"))),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Decision p50",
            "Median time to decide a tier (rules and classifier).",
            f"namespace:tierroute_router_decision_latency_seconds:p50_rate5m{{{NS}}}",
            "s",
        ),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Decision p99",
            "99th percentile decision time; budget 10 ms.",
            f"namespace:tierroute_router_decision_latency_seconds:p99_rate5m{{{NS}}}",
            "s",
        ).thresholds(thresholds((None, "green"), (0.01, "red"))),
        4,
        5,
    )
    layout.add(
        stat_panel(
            "Error ratio",
            "Server-side failures per request (caller errors excluded); SLO at most 1%.",
            f"namespace:tierroute_router_error_ratio:rate5m{{{NS}}}",
            "percentunit",
        ).thresholds(thresholds((None, "green"), (0.01, "red"))),
        4,
        5,
    )


def _mix(layout: Layout) -> None:
    layout.row("Routing mix")
    layout.add(
        timeseries.Panel()
        .title("Requests per second by served tier")
        .description("Successful requests by the tier whose answer the caller kept.")
        .unit("reqps")
        .stacking(stacked())
        .fill_opacity(30)
        .with_target(
            query(
                "sum by (served_tier) (rate(tierroute_router_requests_total"
                f'{{{NS}, code="OK"}}[$__rate_interval]))',
                "{{served_tier}}",
            )
        ),
        12,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Decisions per second by tier and reason")
        .description(
            "The tier chosen before generating and why: a rule (rule:...), the classifier, "
            "an authorised tier hint, or the default."
        )
        .unit("ops")
        .stacking(stacked())
        .fill_opacity(30)
        .legend(table_legend())
        .with_target(
            query(
                "sum by (tier, reason) "
                f"(rate(tierroute_router_decisions_total{{{NS}}}[$__rate_interval]))",
                "{{tier}} / {{reason}}",
            )
        ),
        12,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Share of requests by served tier")
        .description("Recorded 5-minute share of successful requests per served tier.")
        .unit("percentunit")
        .min(0)
        .max(1)
        .stacking(stacked())
        .fill_opacity(50)
        .with_target(
            query(
                f"namespace_served_tier:tierroute_router_requests:share_rate5m{{{NS}}}",
                "{{served_tier}}",
            )
        ),
        12,
        8,
    )
    layout.add(
        piechart.Panel()
        .title("Decision reasons in range")
        .description("How many decisions each reason made over the dashboard's time range.")
        .unit("short")
        .with_target(
            query(
                f"sum by (reason) (increase(tierroute_router_decisions_total{{{NS}}}[$__range]))",
                "{{reason}}",
                instant=True,
            )
        ),
        12,
        8,
    )


def _escalations(layout: Layout) -> None:
    layout.row("Escalations")
    layout.add(
        timeseries.Panel()
        .title("Escalations per second by path and cause")
        .description(
            "low_confidence: final confidence under the fallback threshold; early_window: the "
            "first tokens' running confidence; tier_error: the tier failed before any token."
        )
        .unit("ops")
        .stacking(stacked())
        .fill_opacity(30)
        .with_target(
            query(
                "sum by (from_tier, to_tier, cause) "
                f"(rate(tierroute_router_escalations_total{{{NS}}}[$__rate_interval]))",
                "{{from_tier}} -> {{to_tier}} ({{cause}})",
            )
        ),
        12,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Escalation ratio")
        .description("Escalations per request over 5 and 30 minutes; dashed: top of the band.")
        .unit("percentunit")
        .thresholds(thresholds((None, "green"), (0.3, "red")))
        .thresholds_style(threshold_line())
        .with_target(
            query(
                f"namespace:tierroute_router_escalation_ratio:rate5m{{{NS}}}",
                "{{namespace}} 5m",
            )
        )
        .with_target(
            query(
                f"namespace:tierroute_router_escalation_ratio:rate30m{{{NS}}}",
                "{{namespace}} 30m",
            )
        ),
        6,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Degraded requests per second")
        .description(
            "Requests a smaller tier served because the wanted tier was unavailable, by the "
            "tier that was wanted."
        )
        .unit("reqps")
        .with_target(
            query(
                f"sum by (tier) (rate(tierroute_router_degraded_total{{{NS}}}[$__rate_interval]))",
                "{{tier}}",
            )
        ),
        6,
        8,
    )


def _decision_latency(layout: Layout) -> None:
    layout.row("Decision latency")
    latency = (
        timeseries.Panel()
        .title("Decision latency p50 / p90 / p99")
        .description("Time to decide a tier; dashed: the 10 ms budget of the p99 alert.")
        .unit("s")
        .thresholds(thresholds((None, "green"), (0.01, "red")))
        .thresholds_style(threshold_line())
    )
    for target in quantile_queries(
        "tierroute_router_decision_latency_seconds", NS, "", (0.5, 0.9, 0.99), ""
    ):
        latency = latency.with_target(target)
    layout.add(latency, 12, 8)
    layout.add(
        heatmap.Panel()
        .title("Decision latency distribution")
        .description("Decisions per latency bucket over time.")
        .with_target(
            query(
                "sum by (le) (increase(tierroute_router_decision_latency_seconds_bucket"
                f"{{{NS}}}[$__rate_interval]))",
                "{{le}}",
                heatmap=True,
            )
        ),
        12,
        8,
    )


def _classifier(layout: Layout) -> None:
    layout.row("Classifier and routing accuracy")
    layout.add(
        heatmap.Panel()
        .title("Classifier score distribution")
        .description(
            "P(the cheapest tier is good enough) for the requests the classifier decided; "
            "scores at or above the threshold go to the cheapest tier."
        )
        .with_target(
            query(
                "sum by (le) (increase(tierroute_router_classifier_score_bucket"
                f"{{{NS}}}[$__rate_interval]))",
                "{{le}}",
                heatmap=True,
            )
        ),
        12,
        8,
    )
    layout.add(
        bargauge.Panel()
        .title("Classifier scores in range")
        .description("Classifier decisions per score bucket over the dashboard's time range.")
        .unit("short")
        .with_target(
            query(
                "sum by (le) (increase(tierroute_router_classifier_score_bucket"
                f"{{{NS}}}[$__range]))",
                "{{le}}",
                instant=True,
                heatmap=True,
            )
        ),
        6,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Shadow agreement")
        .description(
            "Answer similarity between the serving tier and the shadow tier (classifier "
            "embeddings), mean over 1 hour; only with shadow sampling on."
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(
            query(
                f"namespace:tierroute_router_shadow_agreement:mean_rate1h{{{NS}}}",
                "{{namespace}} mean 1h",
            )
        ),
        6,
        8,
    )


def build() -> dashboard.Dashboard:
    """The Routing dashboard model."""
    layout = Layout()
    _headline(layout)
    _mix(layout)
    _escalations(layout)
    _decision_latency(layout)
    _classifier(layout)
    builder = (
        dashboard_builders.Dashboard(TITLE)
        .with_variable(datasource_variable())
        .with_variable(label_variable("namespace", "Namespace", "tierroute_router_requests_total"))
    )
    return finish(
        builder,
        layout,
        UID,
        "Routing mix by tier and reason, escalations, decision latency and classifier scores.",
    )

"""The "tierroute / Tiers" dashboard: health, latency, throughput and load of each model tier.

Rows: health (endpoints, circuits, engines), latency (TTFT through the router and inside the
model service, inter-token latency, request duration), throughput, concurrency and queue
pressure, errors, answer confidence, and GPUs from the NVIDIA DCGM exporter.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap, stat, statetimeline, timeseries
from grafana_foundation_sdk.models import dashboard

from observability.panels import (
    NS,
    Layout,
    datasource_variable,
    finish,
    label_variable,
    quantile_queries,
    query,
    table_legend,
    threshold_line,
    thresholds,
)

UID = "tierroute-tiers"
TITLE = "tierroute / Tiers"
# Namespace and tier, for every metric labelled with a configured tier name.
NT = f'{NS}, tier=~"$tier"'


def _rate(metric: str, by: str, selector: str = NT) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def _circuit_mappings() -> list[dashboard.ValueMapping]:
    states = {"0": ("closed", "green"), "1": ("half-open", "yellow"), "2": ("open", "red")}
    return [
        dashboard.ValueMap(
            options={
                value: dashboard.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, (text, color)) in enumerate(states.items())
            }
        )
    ]


def _health(layout: Layout) -> None:
    layout.row("Health")
    layout.add(
        timeseries.Panel()
        .title("Healthy endpoints by tier")
        .description(
            "Endpoints with a closed circuit as the routers see them (best router replica), "
            "and the endpoints configured."
        )
        .unit("short")
        .min(0)
        .with_target(
            query(f"max by (tier) (tierroute_router_healthy_endpoints{{{NT}}})", "{{tier}} healthy")
        )
        .with_target(
            query(f"max by (tier) (tierroute_router_endpoints{{{NT}}})", "{{tier}} configured")
        ),
        8,
        8,
    )
    layout.add(
        statetimeline.Panel()
        .title("Circuit state by endpoint")
        .description("Worst state any router replica holds for the endpoint.")
        .mappings(_circuit_mappings())
        .thresholds(thresholds((None, "green"), (1, "yellow"), (2, "red")))
        .with_target(
            query(
                f"max by (tier, endpoint) (tierroute_router_circuit_state{{{NT}}})",
                "{{tier}} {{endpoint}}",
            )
        ),
        10,
        8,
    )
    layout.add(
        stat.Panel()
        .title("Engines running by tier")
        .description("Model-service replicas whose inference engine is up.")
        .unit("short")
        .with_target(
            query(f"sum by (tier) (tierroute_model_engine_up{{{NT}}})", "{{tier}}", instant=True)
        ),
        6,
        8,
    )


def _latency(layout: Layout) -> None:
    layout.row("Latency")
    panels = [
        (
            "Time to first token through the router",
            "What callers wait for the first token, by the tier that produced it.",
            "tierroute_router_ttft_seconds",
            NT,
            "tier",
        ),
        (
            "Time to first token inside the model service",
            "Engine time to the first token (queueing and prefill), no network.",
            "tierroute_model_ttft_seconds",
            NT,
            "tier",
        ),
        (
            "Inter-token latency",
            "Time between streamed tokens inside the model service.",
            "tierroute_model_inter_token_latency_seconds",
            NT,
            "tier",
        ),
        (
            "Router request duration",
            "Whole routed requests, escalations included (all tiers).",
            "tierroute_router_request_duration_seconds",
            NS,
            "",
        ),
    ]
    for title, description, metric, selector, by in panels:
        panel = (
            timeseries.Panel()
            .title(f"{title} p50 / p99")
            .description(description)
            .unit("s")
            .legend(table_legend())
        )
        prefix = "{{tier}} " if by else ""
        for target in quantile_queries(metric, selector, by, (0.5, 0.99), prefix):
            panel = panel.with_target(target)
        layout.add(panel, 12, 8)


def _throughput(layout: Layout) -> None:
    layout.row("Throughput")
    layout.add(
        timeseries.Panel()
        .title("Generated tokens per second by tier")
        .unit("short")
        .with_target(query(_rate("tierroute_model_completion_tokens_total", "tier"), "{{tier}}")),
        8,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Prompt tokens per second by tier")
        .unit("short")
        .with_target(query(_rate("tierroute_model_prompt_tokens_total", "tier"), "{{tier}}")),
        8,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Generations per second by tier and status")
        .description("Finished Generate calls of the model services by gRPC status.")
        .unit("reqps")
        .with_target(
            query(_rate("tierroute_model_requests_total", "tier, code"), "{{tier}} {{code}}")
        ),
        8,
        8,
    )


def _concurrency(layout: Layout) -> None:
    layout.row("Concurrency and queue")
    layout.add(
        timeseries.Panel()
        .title("Active streams vs limit by tier")
        .description(
            "Streams being generated and the configured concurrent-stream limit, summed over "
            "replicas; and streams open in the routers."
        )
        .unit("short")
        .with_target(
            query(f"sum by (tier) (tierroute_model_active_streams{{{NT}}})", "{{tier}} active")
        )
        .with_target(
            query(
                f"sum by (tier) (tierroute_model_max_concurrent_streams{{{NT}}})",
                "{{tier}} limit",
            )
        )
        .with_target(query(f"sum(tierroute_router_active_streams{{{NS}}})", "router streams")),
        6,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Stream-limit utilisation")
        .description(
            "Active streams / limit. Past its limit the model service does not queue, it "
            "answers RESOURCE_EXHAUSTED. Dashed: the 90% alert."
        )
        .unit("percentunit")
        .min(0)
        .thresholds(thresholds((None, "green"), (0.9, "red")))
        .thresholds_style(threshold_line())
        .with_target(
            query(f"namespace_tier:tierroute_model_stream_utilisation:ratio{{{NT}}}", "{{tier}}")
        ),
        6,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Rejected for overload per second")
        .description("Generate calls refused with RESOURCE_EXHAUSTED (the stream limit was full).")
        .unit("reqps")
        .with_target(
            query(
                _rate(
                    "tierroute_model_requests_total",
                    "tier",
                    f'{NT}, code="RESOURCE_EXHAUSTED"',
                ),
                "{{tier}}",
            )
        ),
        6,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Requests held by the engine")
        .description(
            "Requests the inference engine holds, waiting or running (the engine's own queue), "
            "summed over replicas."
        )
        .unit("short")
        .min(0)
        .with_target(
            query(
                f"sum by (tier) (tierroute_model_engine_unfinished_requests{{{NT}}})",
                "{{tier}}",
            )
        ),
        6,
        8,
    )


def _errors(layout: Layout) -> None:
    layout.row("Errors")
    layout.add(
        timeseries.Panel()
        .title("Model service failures per second by tier and code")
        .unit("reqps")
        .with_target(
            query(
                _rate("tierroute_model_requests_total", "tier, code", f'{NT}, code!="OK"'),
                "{{tier}} {{code}}",
            )
        ),
        8,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Tier errors seen by the router per second")
        .description("Calls from the router to a tier that failed, by tier and gRPC status.")
        .unit("reqps")
        .with_target(
            query(_rate("tierroute_router_tier_errors_total", "tier, code"), "{{tier}} {{code}}")
        ),
        8,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("Model service error ratio by tier")
        .description("Server-side failures per Generate call over 5 minutes.")
        .unit("percentunit")
        .with_target(
            query(f"namespace_tier:tierroute_model_error_ratio:rate5m{{{NT}}}", "{{tier}}")
        ),
        8,
        8,
    )


def _confidence(layout: Layout) -> None:
    layout.row("Answer confidence")
    layout.add(
        heatmap.Panel()
        .title("Confidence score distribution")
        .description(
            "Finished.confidence.score of the selected tiers: low scores escalate when below "
            "the router's fallback threshold."
        )
        .with_target(
            query(
                "sum by (le) (increase(tierroute_model_confidence_bucket"
                f"{{{NT}}}[$__rate_interval]))",
                "{{le}}",
                heatmap=True,
            )
        ),
        12,
        8,
    )
    median = timeseries.Panel().title("Median confidence by tier").unit("percentunit").min(0)
    for target in quantile_queries("tierroute_model_confidence", NT, "tier", (0.5,), "{{tier}} "):
        median = median.with_target(target)
    layout.add(median.max(1), 12, 8)


def _gpus(layout: Layout) -> None:
    layout.row("GPUs (NVIDIA DCGM exporter)")
    gpu = "Hostname, gpu"
    layout.add(
        timeseries.Panel()
        .title("GPU utilisation")
        .description("DCGM_FI_DEV_GPU_UTIL per GPU of the GPU nodes (no data without GPUs).")
        .unit("percent")
        .min(0)
        .max(100)
        .with_target(query(f"avg by ({gpu}) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}} GPU {{gpu}}")),
        12,
        8,
    )
    layout.add(
        timeseries.Panel()
        .title("GPU memory used")
        .description("Frame-buffer memory used / (used + free) per GPU; the KV cache lives here.")
        .unit("percentunit")
        .min(0)
        .max(1)
        .with_target(
            query(
                f"sum by ({gpu}) (DCGM_FI_DEV_FB_USED) / "
                f"(sum by ({gpu}) (DCGM_FI_DEV_FB_USED) + sum by ({gpu}) (DCGM_FI_DEV_FB_FREE))",
                "{{Hostname}} GPU {{gpu}}",
            )
        ),
        12,
        8,
    )


def build() -> dashboard.Dashboard:
    """The Tiers dashboard model."""
    layout = Layout()
    _health(layout)
    _latency(layout)
    _throughput(layout)
    _concurrency(layout)
    _errors(layout)
    _confidence(layout)
    _gpus(layout)
    builder = (
        dashboard_builders.Dashboard(TITLE)
        .with_variable(datasource_variable())
        .with_variable(label_variable("namespace", "Namespace", "tierroute_model_requests_total"))
        .with_variable(label_variable("tier", "Tier", "tierroute_model_requests_total", NS))
    )
    return finish(
        builder,
        layout,
        UID,
        "Health, latency, throughput, load, errors, confidence and GPUs of each model tier.",
    )

"""Building blocks shared by the dashboards: queries, variables, thresholds and the grid.

Panels are positioned here rather than by the SDK's builder, which lets a panel overflow the
24-column grid instead of wrapping it; :class:`Layout` wraps, numbers panels and gives every
query a distinct ``refId``, so the JSON is stable from one generation to the next.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import prometheus as prometheus_models

GRID_WIDTH = 24
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "tierroute"

# Every query filters on the namespace variable; "All" expands to ".*", which also matches a
# Prometheus whose targets carry no namespace label at all (a plain static scrape).
NS = 'namespace=~"$namespace"'


def query(
    expr: str, legend: str = "", *, instant: bool = False, heatmap: bool = False
) -> prometheus.Dataquery:
    """A PromQL query of the dashboard's Prometheus data source."""
    builder = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        builder = builder.legend_format(legend)
    builder = builder.instant() if instant else builder.range()
    if heatmap:
        builder = builder.format(prometheus_models.PromQueryFormat.HEATMAP)
    return builder


def quantile_queries(
    metric: str, selector: str, by: str, quantiles: Sequence[float], legend_prefix: str
) -> list[prometheus.Dataquery]:
    """``histogram_quantile`` queries of one histogram, one per quantile, grouped by ``by``."""
    group = f"{by}, le" if by else "le"
    result = []
    for q in quantiles:
        expr = (
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))"
        )
        label = f"p{round(q * 100):d}"
        result.append(query(expr, f"{legend_prefix}{label}".strip()))
    return result


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds; the first step's value must be None (minus infinity)."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=value, color=color) for value, color in steps])
    )


def threshold_line() -> common_builders.GraphThresholdsStyleConfig:
    """Draw a panel's thresholds as a dashed line (SLO and alert levels on time series)."""
    return common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)


def table_legend() -> common_builders.VizLegendOptions:
    """A legend as a table with the last and maximum values: series stay readable when many."""
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def stacked() -> common_builders.StackingConfig:
    """Normal stacking: the series add up to a total (spend, traffic)."""
    return common_builders.StackingConfig().mode(common.StackingMode.NORMAL)


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    """The ``datasource`` variable: any Prometheus data source of the Grafana instance."""
    return (
        dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )


def label_variable(
    name: str, label: str, metric: str, selector: str = ""
) -> dashboard_builders.QueryVariable:
    """A multi-value variable from a label's values, "All" meaning any value (``.*``)."""
    source = f"{metric}{{{selector}}}" if selector else metric
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({source}, {name})")
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dashboard.VariableOption(selected=True, text="All", value="$__all"))
    )


def dashboard_links() -> dashboard_builders.DashboardLink:
    """A drop-down of the other tierroute dashboards, keeping time range and variables."""
    return (
        dashboard_builders.DashboardLink("tierroute")
        .type(dashboard.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


class Layout:
    """Places rows and panels on the 24-column grid, left to right, wrapping as needed."""

    def __init__(self) -> None:
        self.panels: list[dashboard.Panel | dashboard.RowPanel] = []
        self._x = 0
        self._y = 0
        self._line_height = 0
        self._next_id = 1

    def row(self, title: str) -> None:
        """Start a new (expanded) row below everything placed so far."""
        self._newline()
        row = dashboard_builders.Row(title).collapsed(False).build()
        row.id_val = self._take_id()
        row.grid_pos = dashboard.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y)
        self.panels.append(row)
        self._y += 1

    def add(self, builder: cogbuilder.Builder[dashboard.Panel], width: int, height: int) -> None:
        """Place a panel of ``width`` columns and ``height`` grid units."""
        if not 0 < width <= GRID_WIDTH:
            raise ValueError(f"panel width must be 1..{GRID_WIDTH}, got {width}")
        if self._x + width > GRID_WIDTH:
            self._newline()
        panel = builder.build()
        panel.id_val = self._take_id()
        panel.grid_pos = dashboard.GridPos(h=height, w=width, x=self._x, y=self._y)
        panel.datasource = DATASOURCE
        for index, target in enumerate(panel.targets or []):
            # refIds must be unique within a panel; A, B, C... as Grafana's editor does.
            target.ref_id = chr(ord("A") + index)  # type: ignore[attr-defined]
        self.panels.append(panel)
        self._x += width
        self._line_height = max(self._line_height, height)

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def _take_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value


def finish(
    builder: dashboard_builders.Dashboard, layout: Layout, uid: str, description: str
) -> dashboard.Dashboard:
    """The dashboard model with the settings all of them share and the laid-out panels."""
    model = (
        builder.uid(uid)
        .description(description)
        .tags([TAG])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .link(dashboard_links())
        .build()
    )
    model.panels = list(layout.panels)
    return model


def stat_panel(title: str, description: str, expr: str, unit: str) -> stat.Panel:
    """A single-value panel of an instant query, one value per namespace."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .with_target(query(expr, "{{namespace}}", instant=True))
    )

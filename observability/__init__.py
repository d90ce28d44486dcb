"""Observability assets of tierroute: the Grafana dashboard generator and its building blocks.

The dashboards are built with ``grafana-foundation-sdk`` (typed builders for the Grafana 11.6
dashboard schema) and written as JSON into ``helm/tierroute/files/dashboards/``, where the chart
loads them into ConfigMaps. Regenerate with ``python -m observability.generate``; the rule files
and their promtool tests live beside the dashboards in the chart and in ``observability/promtool``.
"""

"""Metric "E2E Latency P99": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("E2E Latency P99")

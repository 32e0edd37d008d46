"""Metric "QA EM": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("QA EM")

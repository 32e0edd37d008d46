"""Metric "Transfer GB": see docs/metrics.md for its definition."""
from edgellm.metrics.catalog import register_metric

register_metric("Transfer GB")
